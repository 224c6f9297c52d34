"""A partition's cumulative money flows, published to the state topic beside the views.

For an aggregate that says what money its events move
(`topology.protocol.Tallied`), each partition keeps, from its first batch on,
what entered (`deposited`), what left
(`withdrawn`), and per counterparty partition q what it `sent` to accounts on q, `received`
from accounts on q and got `refunded` of what it sent to q. The totals travel in the
checkpoint (so a restart or a new generation goes on from them) and are published under
`FLOWS_KEY` in the same transaction as the views they account for.

Invariant, per partition p at every committed transaction: Σ balances of p's accounts =
deposited − withdrawn − Σ_q sent[q] + Σ_q received[q] + Σ_q refunded[q] − Σ_q moved_out[q]
+ Σ_q moved_in[q], modulo 2^64. `moved_out[q]` is what the balances of the accounts p handed
to q in a repartition's moves added up to, `moved_in[q]` what those q handed to p did
(`docs/design-repartition.md`); with no move in flight, moved_out[p→q] = moved_in[q←p].
Cumulative totals grow without bound (a deposit and a withdrawal of 2^63 − 1, again and
again, are legal), so each is kept as its value modulo 2^64 in the int64 range (`wrapped`):
it always encodes, and the invariant is checked modulo 2^64 (`Flows.balance` and `wrapped`
of Σ balances).
"""

from collections.abc import Callable, Iterable
from typing import Final

import msgspec

__all__ = ["FLOWS_KEY", "MOVE_KINDS", "Flows", "tallied", "wrapped"]

FLOWS_KEY: Final = b"\xff\x00flows"
"""The state-topic key of a partition's flows record: no account id, id key or checkpoint
has it (not UTF-8, not a msgpack array). Readers of views skip it."""

MOVE_KINDS: Final = ("deposited", "withdrawn", "sent", "received", "refunded")

_MOD: Final = 2**64
_HALF: Final = 2**63


def wrapped(value: int) -> int:
    """`value` modulo 2^64, as a signed 64-bit integer (what a flow total holds)."""
    return (value + _HALF) % _MOD - _HALF


class Flows(msgspec.Struct, frozen=True, array_like=True):
    """Cumulative money flows of one partition (see the module docstring)."""

    deposited: int = 0
    withdrawn: int = 0
    sent: dict[int, int] = msgspec.field(default_factory=dict)
    received: dict[int, int] = msgspec.field(default_factory=dict)
    refunded: dict[int, int] = msgspec.field(default_factory=dict)
    moved_out: dict[int, int] = msgspec.field(default_factory=dict)
    moved_in: dict[int, int] = msgspec.field(default_factory=dict)

    def balance(self) -> int:
        """What the partition's balances must add up to, modulo 2^64 (compare with
        `wrapped` of their sum)."""
        return wrapped(
            self.deposited
            - self.withdrawn
            - sum(self.sent.values())
            + sum(self.received.values())
            + sum(self.refunded.values())
            - sum(self.moved_out.values())
            + sum(self.moved_in.values())
        )

    def moved(self, *, out: int | None = None, into: int | None = None, amount: int) -> "Flows":
        """These flows after a move of accounts holding `amount` out to partition `out` (a
        handoff) or in from partition `into` (an install)."""
        if (out is None) == (into is None):
            raise ValueError("a move goes out to a partition or in from one")
        if out is not None:
            total = wrapped(self.moved_out.get(out, 0) + amount)
            return msgspec.structs.replace(self, moved_out={**self.moved_out, out: total})
        assert into is not None
        total = wrapped(self.moved_in.get(into, 0) + amount)
        return msgspec.structs.replace(self, moved_in={**self.moved_in, into: total})


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
            deposited = wrapped(deposited + amount)
        elif kind == "withdrawn":
            withdrawn = wrapped(withdrawn + amount)
        elif kind in per:
            q = partition_of(other)
            per[kind][q] = wrapped(per[kind].get(q, 0) + amount)
        else:
            raise ValueError(f"unknown money move {kind!r}")
    return Flows(
        deposited,
        withdrawn,
        per["sent"],
        per["received"],
        per["refunded"],
        flows.moved_out,
        flows.moved_in,
    )
