"""Events: facts that happened to an account. Tagged by class name on the wire.

Money: `Deposited`, `Withdrawn` change the total; a transfer moves it: `TransferDebited` and
`PendingPosted` (source) put it in flight, `TransferCredited` and `PendingCreditSettled`
(target) or `TransferReversed` (source) take it out. Reservations (`PendingReserved`,
`PendingCreditNoted`), `TransferCompleted` (the source learns the target took it) and a
pending transfer's pairing (`PendingCreditAwaited`, `PendingCreditPaired`) move no money.
"""

from typing import Literal

import msgspec

__all__ = [
    "AccountClosed",
    "AccountOpened",
    "Awaiting",
    "Deposited",
    "Event",
    "ForcedAction",
    "PendingCreditAwaited",
    "PendingCreditNoted",
    "PendingCreditPaired",
    "PendingCreditReleased",
    "PendingCreditSettled",
    "PendingPosted",
    "PendingReserved",
    "PendingVoided",
    "TransferCompleted",
    "TransferCredited",
    "TransferDebited",
    "TransferForced",
    "TransferReversed",
    "VoidReason",
    "Withdrawn",
]

VoidReason = Literal["voided", "expired", "refused"]
Awaiting = Literal["note", "end"]


class _Event(msgspec.Struct, frozen=True, tag=True):
    """Base of every event. Unknown fields are tolerated so old readers survive new writers."""


class AccountOpened(_Event, frozen=True):
    """The account exists from now on, with balance zero."""

    currency: str
    overdraft_limit: int


class Deposited(_Event, frozen=True):
    """`amount` (> 0) minor units were credited."""

    amount: int


class Withdrawn(_Event, frozen=True):
    """`amount` (> 0) minor units were debited."""

    amount: int


class AccountClosed(_Event, frozen=True):
    """The account is closed for good; its id is never reused."""


class TransferDebited(_Event, frozen=True):
    """Source: `amount` left for `to`; in flight until credited or reversed. `seq` is this
    event's own sequence (it names the transfer's legs: see
    `ledger.internal.leg_id`)."""

    transfer_id: str
    to: str
    amount: int
    seq: int = 0
    at_ms: int = 0  # the partition's clock when it was debited


class TransferCredited(_Event, frozen=True):
    """Target: `amount` arrived from `source`."""

    transfer_id: str
    source: str
    amount: int


class TransferReversed(_Event, frozen=True):
    """Source: the target refused (`code`); `amount` came back."""

    transfer_id: str
    to: str
    amount: int
    code: str


class TransferCompleted(_Event, frozen=True):
    """Source: the target took what was sent for `transfer_id`; nothing can come back now
    (moves no money: it only ends the transfer on this side)."""

    transfer_id: str
    to: str


class PendingReserved(_Event, frozen=True):
    """Source: `amount` reserved for `to` (available drops, balance does not); voided at
    `expires_ms` on the partition's clock when set."""

    transfer_id: str
    to: str
    amount: int
    expires_ms: int | None = None
    seq: int = 0  # this event's own sequence (names the transfer's legs)


class PendingCreditNoted(_Event, frozen=True):
    """Target: `amount` is reserved for it by `source` (not yet its money) by the source's
    reservation `seq`."""

    transfer_id: str
    source: str
    amount: int
    seq: int = 0


class PendingPosted(_Event, frozen=True):
    """Source: the reservation ends and `amount` (<= reserved) is debited, in flight to the
    target `to` until it settles."""

    transfer_id: str
    to: str
    amount: int
    at_ms: int = 0  # the partition's clock when it was debited


ForcedAction = Literal["redrive", "refund"]


class TransferForced(_Event, frozen=True):
    """An operator (`operator`, for `reason`) forced a lost leg of transfer `transfer_id`
    with `counterparty` through: `redrive` delivered it as it was, `refund` refused it so
    the money goes back to its source. Moves no money itself (the leg's own events do)."""

    transfer_id: str
    counterparty: str
    action: ForcedAction
    operator: str
    reason: str


class PendingCreditSettled(_Event, frozen=True):
    """Target: the pending credit from `source` ends and `amount` is credited."""

    transfer_id: str
    source: str
    amount: int


class PendingVoided(_Event, frozen=True):
    """Source: the reservation ends without moving money."""

    transfer_id: str
    reason: VoidReason


class PendingCreditReleased(_Event, frozen=True):
    """Target: the pending credit from `source` ends without moving money."""

    transfer_id: str
    source: str = ""  # "" in events written before credits were kept per source


class PendingCreditAwaited(_Event, frozen=True):
    """Target: one leg of pending transfer (`source`, `transfer_id`, `seq`) came without its
    pair, which is awaited (`ledger.pairs`): "note" (its end, a release or settlement,
    overtook its note across a move; the note is taken as ended when it comes) or "end"
    (its note was refused; the source's release or settlement ends it)."""

    transfer_id: str
    source: str
    seq: int
    awaiting: Awaiting


class PendingCreditPaired(_Event, frozen=True):
    """Target: the awaited leg of pending transfer (`source`, `transfer_id`, `seq`) came;
    nothing more is awaited of it."""

    transfer_id: str
    source: str
    seq: int


Event = (
    AccountOpened
    | Deposited
    | Withdrawn
    | AccountClosed
    | TransferDebited
    | TransferCredited
    | TransferReversed
    | TransferCompleted
    | TransferForced
    | PendingReserved
    | PendingCreditNoted
    | PendingPosted
    | PendingCreditSettled
    | PendingVoided
    | PendingCreditReleased
    | PendingCreditAwaited
    | PendingCreditPaired
)
