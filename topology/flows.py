"""A partition's cumulative money flows, published to the state topic beside the views.

For an aggregate that says what money its events move
(`eventledger.topology.protocol.Tallied`), each partition keeps, from its first batch on,
what entered (`deposited`), what left
(`withdrawn`), and per counterparty partition q what it `sent` to accounts on q, `received`
from accounts on q and got `refunded` of what it sent to q. The totals travel in the
checkpoint (so a restart or a new generation goes on from them) and are published under
`FLOWS_KEY` in the same transaction as the views they account for.

Invariant, per partition p at every committed transaction: Σ balances of p's accounts =
deposited − withdrawn − Σ_q sent[q] + Σ_q received[q] + Σ_q refunded[q].
"""

from collections.abc import Callable, Iterable
from typing import Final

import msgspec

__all__ = ["FLOWS_KEY", "MOVE_KINDS", "Flows", "tallied"]

FLOWS_KEY: Final = b"\xff\x00flows"
"""The state-topic key of a partition's flows record: no account id, id key or checkpoint
has it (not UTF-8, not a msgpack array). Readers of views skip it."""

MOVE_KINDS: Final = ("deposited", "withdrawn", "sent", "received", "refunded")


class Flows(msgspec.Struct, frozen=True, array_like=True):
    """Cumulative money flows of one partition (see the module docstring)."""

    deposited: int = 0
    withdrawn: int = 0
    sent: dict[int, int] = msgspec.field(default_factory=dict)
    received: dict[int, int] = msgspec.field(default_factory=dict)
    refunded: dict[int, int] = msgspec.field(default_factory=dict)

    def balance(self) -> int:
        """What the partition's balances must add up to."""
        return (
            self.deposited
            - self.withdrawn
            - sum(self.sent.values())
            + sum(self.received.values())
            + sum(self.refunded.values())
        )


def tallied(
    flows: Flows, moves: Iterable[tuple[str, str, int]], partition_of: Callable[[str], int]
) -> Flows:
    """`flows` after `moves` (kind, counterparty aggregate id, amount)."""
    deposited, withdrawn = flows.deposited, flows.withdrawn
    per = {
        "sent": dict(flows.sent),
        "received": dict(flows.received),
        "refunded": dict(flows.refunded),
    }
    for kind, other, amount in moves:
        if kind == "deposited":
            deposited += amount
        elif kind == "withdrawn":
            withdrawn += amount
        elif kind in per:
            q = partition_of(other)
            per[kind][q] = per[kind].get(q, 0) + amount
        else:
            raise ValueError(f"unknown money move {kind!r}")
    return Flows(deposited, withdrawn, per["sent"], per["received"], per["refunded"])
