"""Folding events into state."""

from typing import assert_never

from msgspec.structs import replace

from ledger.events import AccountClosed, AccountOpened, Deposited, Event, Withdrawn
from ledger.state import Account

__all__ = ["evolve"]


def evolve(state: Account | None, event: Event) -> Account:
    """Apply one event. Pure (the version, the events applied, is counted by the flow).
    Raises ValueError for an event that cannot follow `state` (a corrupt log)."""
    match event:
        case AccountOpened(currency=currency, overdraft_limit=limit):
            if state is not None:
                raise ValueError("AccountOpened applied to an existing account")
            return Account("open", currency, 0, limit)
        case Deposited(amount=amount):
            current = _existing(state, event)
            return replace(current, balance=current.balance + amount)
        case Withdrawn(amount=amount):
            current = _existing(state, event)
            return replace(current, balance=current.balance - amount)
        case AccountClosed():
            current = _existing(state, event)
            return replace(current, status="closed")
        case _:
            assert_never(event)


def _existing(state: Account | None, event: Event) -> Account:
    if state is None:
        raise ValueError(f"{type(event).__name__} applied to an account that does not exist")
    return state
