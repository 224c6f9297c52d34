"""Account state (internal layout) and its public view (published layout)."""

from typing import Final, Literal

import msgspec

__all__ = ["MAX_MINOR_UNITS", "Account", "AccountStatus", "AccountView", "view"]

MAX_MINOR_UNITS: Final = 2**63 - 1
"""Largest amount, balance or overdraft limit: money must fit a signed 64-bit integer."""

AccountStatus = Literal["open", "closed"]


class Account(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Internal state. Invariant: -overdraft_limit <= balance <= MAX_MINOR_UNITS. The
    account's version (events applied) is not here: the flow counts it, once, in its slot.
    Encoded as an array (it is in every snapshot, a million of them held in memory): field
    order is layout, so a change of it is a state schema version bump (layout 2 dropped the
    `version` field that layout 1 kept in lockstep with the slot's)."""

    status: AccountStatus
    currency: str
    balance: int
    overdraft_limit: int


class AccountView(msgspec.Struct, frozen=True):
    """Public view published to the state topic. Its layout is a contract with readers and
    changes independently of `Account`; the account id is the record key, not a field."""

    status: AccountStatus
    currency: str
    balance: int
    overdraft_limit: int
    version: int


def view(state: Account, version: int) -> AccountView:
    """The public view of an existing account at `version` (the events applied to it)."""
    return AccountView(
        status=state.status,
        currency=state.currency,
        balance=state.balance,
        overdraft_limit=state.overdraft_limit,
        version=version,
    )
