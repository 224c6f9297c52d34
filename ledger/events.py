"""Events: facts that happened to an account. Tagged by class name on the wire."""

import msgspec

__all__ = ["AccountClosed", "AccountOpened", "Deposited", "Event", "Withdrawn"]


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


Event = AccountOpened | Deposited | Withdrawn | AccountClosed
