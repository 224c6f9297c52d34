"""Folding events into state."""

from typing import assert_never

from msgspec.structs import replace

from eventledger.ledger.events import (
    AccountClosed,
    AccountOpened,
    Deposited,
    Event,
    PendingCreditNoted,
    PendingCreditReleased,
    PendingCreditSettled,
    PendingPosted,
    PendingReserved,
    PendingVoided,
    TransferCredited,
    TransferDebited,
    TransferReversed,
    Withdrawn,
)
from eventledger.ledger.state import Account, Pending

__all__ = ["evolve"]


def evolve(state: Account | None, event: Event) -> Account:
    """Apply one event. Pure (the version, the events applied, is counted by the flow).
    Raises ValueError for an event that cannot follow `state` (a corrupt log)."""
    if isinstance(event, AccountOpened):
        if state is not None:
            raise ValueError("AccountOpened applied to an existing account")
        return Account("open", event.currency, 0, event.overdraft_limit)
    if state is None:
        raise ValueError(f"{type(event).__name__} applied to an account that does not exist")
    match event:
        case Deposited(amount=amount) | TransferCredited(amount=amount):
            return replace(state, balance=state.balance + amount)
        case TransferReversed(amount=amount):
            return replace(state, balance=state.balance + amount)
        case Withdrawn(amount=amount) | TransferDebited(amount=amount):
            return replace(state, balance=state.balance - amount)
        case AccountClosed():
            return replace(state, status="closed")
        case PendingReserved(transfer_id=tid, to=to, amount=amount, expires_ms=expires):
            pending = {**state.pending, tid: Pending("out", to, amount, expires)}
            return replace(state, pending=pending, pending_debits=state.pending_debits + amount)
        case PendingCreditNoted(transfer_id=tid, source=source, amount=amount):
            pending = {**state.pending, tid: Pending("in", source, amount)}
            return replace(state, pending=pending, pending_credits=state.pending_credits + amount)
        case PendingPosted(transfer_id=tid, amount=amount):
            rest, reserved = _without(state, tid, "out")
            return replace(
                state,
                pending=rest,
                pending_debits=state.pending_debits - reserved.amount,
                balance=state.balance - amount,
            )
        case PendingVoided(transfer_id=tid):
            rest, reserved = _without(state, tid, "out")
            return replace(
                state, pending=rest, pending_debits=state.pending_debits - reserved.amount
            )
        case PendingCreditSettled(transfer_id=tid, amount=amount):
            rest, noted = _without(state, tid, "in")
            return replace(
                state,
                pending=rest,
                pending_credits=state.pending_credits - noted.amount,
                balance=state.balance + amount,
            )
        case PendingCreditReleased(transfer_id=tid):
            rest, noted = _without(state, tid, "in")
            return replace(
                state, pending=rest, pending_credits=state.pending_credits - noted.amount
            )
        case _:
            assert_never(event)


def _without(
    state: Account, transfer_id: str, direction: str
) -> tuple[dict[str, Pending], Pending]:
    """The open pending transfers without `transfer_id`, and that transfer."""
    pending = state.pending.get(transfer_id)
    if pending is None or pending.direction != direction:
        raise ValueError(f"no open pending transfer {transfer_id!r} ({direction})")
    return {k: v for k, v in state.pending.items() if k != transfer_id}, pending
