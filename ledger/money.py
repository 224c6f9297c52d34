"""Where money goes: each event's moves, and the money fold every checker shares.

Invariant (conservation): Σ balances + in flight = Σ deposited − Σ withdrawn, where in flight
is what was debited for a transfer (`TransferDebited`, `PendingPosted`) and neither credited
(`TransferCredited`, `PendingCreditSettled`) nor reversed (`TransferReversed`) yet.
Reservations (`PendingReserved`, `PendingCreditNoted`) move no money.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ledger.events import (
    Deposited,
    Event,
    PendingCreditSettled,
    PendingPosted,
    TransferCredited,
    TransferDebited,
    TransferReversed,
    Withdrawn,
)

__all__ = ["Money", "MoveKind", "moves"]

MoveKind = Literal["deposited", "withdrawn", "sent", "received", "refunded"]


def moves(event: Event) -> list[tuple[MoveKind, str, int]]:
    """The money `event` moves: (kind, the other account of a transfer or "", amount)."""
    match event:
        case Deposited(amount=amount):
            return [("deposited", "", amount)]
        case Withdrawn(amount=amount):
            return [("withdrawn", "", amount)]
        case TransferDebited(to=to, amount=amount) | PendingPosted(to=to, amount=amount):
            return [("sent", to, amount)]
        case (
            TransferCredited(source=source, amount=amount)
            | PendingCreditSettled(source=source, amount=amount)
        ):
            return [("received", source, amount)]
        case TransferReversed(to=to, amount=amount):
            return [("refunded", to, amount)]
    return []


@dataclass
class Money:
    """A fold of events into the totals of the conservation invariant, and what each
    transfer id did (to check that a transfer moved once and ended once). `legs` is keyed by
    the transfer id alone: fold a workload whose transfer ids are unique across sources (the
    demo's, the benchmarks' and the fault suite's are); the simulator's checker keys
    transfers by (source, target, id), as the ledger does."""

    deposited: int = 0
    withdrawn: int = 0
    sent: int = 0
    received: int = 0
    refunded: int = 0
    legs: dict[str, list[str]] = field(default_factory=dict)

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            for kind, _, amount in moves(event):
                setattr(self, kind, getattr(self, kind) + amount)
            transfer_id = getattr(event, "transfer_id", None)
            if transfer_id is not None:
                self.legs.setdefault(transfer_id, []).append(type(event).__name__)

    @property
    def in_flight(self) -> int:
        """Debited for a transfer, neither credited nor reversed yet."""
        return self.sent - self.received - self.refunded

    @property
    def expected_total(self) -> int:
        """What Σ balances + in flight must be."""
        return self.deposited - self.withdrawn

    def broken_transfers(self) -> list[str]:
        """Transfer ids whose events break the rules: more than one debit, a credit or
        reversal count other than the debits', or a pending transfer ended twice."""
        broken = []
        for transfer_id, legs in sorted(self.legs.items()):
            moved = legs.count("TransferDebited") + legs.count("PendingPosted")
            landed = (
                legs.count("TransferCredited")
                + legs.count("PendingCreditSettled")
                + legs.count("TransferReversed")
            )
            ended = legs.count("PendingPosted") + legs.count("PendingVoided")
            if moved > 1 or landed > moved or ended > 1:
                broken.append(transfer_id)
        return broken

    def unfinished_transfers(self) -> list[str]:
        """Transfer ids still in flight (debited, not yet credited or reversed)."""
        return [
            t
            for t, legs in sorted(self.legs.items())
            if legs.count("TransferDebited") + legs.count("PendingPosted")
            > legs.count("TransferCredited")
            + legs.count("PendingCreditSettled")
            + legs.count("TransferReversed")
        ]
