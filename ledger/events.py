"""Events: facts that happened to an account. Tagged by class name on the wire.

Money: `Deposited`, `Withdrawn` change the total; a transfer moves it: `TransferDebited` and
`PendingPosted` (source) put it in flight, `TransferCredited` and `PendingCreditSettled`
(target) or `TransferReversed` (source) take it out. Reservations (`PendingReserved`,
`PendingCreditNoted`) move no money.
"""

from typing import Literal

import msgspec

__all__ = [
    "AccountClosed",
    "AccountOpened",
    "Deposited",
    "Event",
    "PendingCreditNoted",
    "PendingCreditReleased",
    "PendingCreditSettled",
    "PendingPosted",
    "PendingReserved",
    "PendingVoided",
    "TransferCredited",
    "TransferDebited",
    "TransferReversed",
    "VoidReason",
    "Withdrawn",
]

VoidReason = Literal["voided", "expired", "refused"]


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
    """Source: `amount` left for `to`; in flight until credited or reversed."""

    transfer_id: str
    to: str
    amount: int


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


class PendingReserved(_Event, frozen=True):
    """Source: `amount` reserved for `to` (available drops, balance does not); voided at
    `expires_ms` on the partition's clock when set."""

    transfer_id: str
    to: str
    amount: int
    expires_ms: int | None = None


class PendingCreditNoted(_Event, frozen=True):
    """Target: `amount` is reserved for it by `source` (not yet its money)."""

    transfer_id: str
    source: str
    amount: int


class PendingPosted(_Event, frozen=True):
    """Source: the reservation ends and `amount` (<= reserved) is debited, in flight to the
    target `to` until it settles."""

    transfer_id: str
    to: str
    amount: int


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
    """Target: the pending credit ends without moving money."""

    transfer_id: str


Event = (
    AccountOpened
    | Deposited
    | Withdrawn
    | AccountClosed
    | TransferDebited
    | TransferCredited
    | TransferReversed
    | PendingReserved
    | PendingCreditNoted
    | PendingPosted
    | PendingCreditSettled
    | PendingVoided
    | PendingCreditReleased
)
