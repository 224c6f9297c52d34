"""Folding events into state."""

from typing import assert_never

from msgspec.structs import replace

from ledger.events import AccountClosed, AccountOpened, Deposited, Event, Withdrawn
from ledger.state import Account

__all__ = ["evolve"]


def evolve(state: Account | None, event: Event) -> Account:
    """Apply one event. Pure; the new state's version is the old one plus one.
    Raises ValueError for an event that cannot follow `state` (a corrupt log)."""
    match event:
        case AccountOpened(currency=currency, overdraft_limit=limit):
            if state is not None:
                raise ValueError("AccountOpened applied to an existing account")
            return Account("open", currency, 0, limit, 1)
        case Deposited(amount=amount):
            current = _existing(state, event)
            return replace(current, balance=current.balance + amount, version=current.version + 1)
        case Withdrawn(amount=amount):
            current = _existing(state, event)
            return replace(current, balance=current.balance - amount, version=current.version + 1)
        case AccountClosed():
            current = _existing(state, event)
            return replace(current, status="closed", version=current.version + 1)
        case _:
            assert_never(event)


def _existing(state: Account | None, event: Event) -> Account:
    if state is None:
        raise ValueError(f"{type(event).__name__} applied to an account that does not exist")
    return state
