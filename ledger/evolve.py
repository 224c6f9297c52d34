"""Folding events into state."""

from typing import assert_never

from msgspec.structs import replace

from ledger.events import (
    AccountClosed,
    AccountOpened,
    Deposited,
    Event,
    PendingCreditAwaited,
    PendingCreditNoted,
    PendingCreditPaired,
    PendingCreditReleased,
    PendingCreditSettled,
    PendingPosted,
    PendingReserved,
    PendingVoided,
    TransferCompleted,
    TransferCredited,
    TransferDebited,
    TransferForced,
    TransferReversed,
    Withdrawn,
)
from ledger.pairs import awaited_key
from ledger.state import ENDED_KEPT, Account, Pending

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
        case Withdrawn(amount=amount):
            return replace(state, balance=state.balance - amount)
        case TransferDebited(transfer_id=tid, to=to, amount=amount, seq=seq, at_ms=at):
            sending = {**state.sending, tid: Pending("out", to, amount, None, seq, at)}
            return replace(state, balance=state.balance - amount, sending=sending)
        case TransferReversed(transfer_id=tid, amount=amount):
            sending = {k: v for k, v in state.sending.items() if k != tid}
            return replace(state, balance=state.balance + amount, sending=sending)
        case TransferCompleted(transfer_id=tid):
            return replace(state, sending={k: v for k, v in state.sending.items() if k != tid})
        case AccountClosed():
            return replace(state, status="closed")
        case TransferForced():
            return state  # the forced leg's own events change the account
        case PendingReserved(transfer_id=tid, to=to, amount=amount, expires_ms=expires, seq=seq):
            pending = {**state.pending, tid: Pending("out", to, amount, expires, seq)}
            ended = {k: v for k, v in state.ended.items() if k != tid}
            return replace(
                state,
                pending=pending,
                pending_debits=state.pending_debits + amount,
                ended=ended,
            )
        case PendingCreditNoted(transfer_id=tid, source=source, amount=amount, seq=seq):
            credits = {
                **state.incoming.get(source, {}),
                tid: Pending("in", source, amount, None, seq),
            }
            return replace(
                state,
                incoming={**state.incoming, source: credits},
                pending_credits=state.pending_credits + amount,
            )
        case PendingPosted(transfer_id=tid, to=to, amount=amount, at_ms=at):
            rest, reserved = _without(state, tid)
            sending = {**state.sending, tid: Pending("out", to, amount, None, reserved.seq, at)}
            return replace(
                state,
                pending=rest,
                pending_debits=state.pending_debits - reserved.amount,
                balance=state.balance - amount,
                sending=sending,
                ended=_ended(state, tid, "posted"),
            )
        case PendingVoided(transfer_id=tid, reason=reason):
            rest, reserved = _without(state, tid)
            return replace(
                state,
                pending=rest,
                pending_debits=state.pending_debits - reserved.amount,
                ended=_ended(state, tid, reason),
            )
        case PendingCreditSettled(transfer_id=tid, source=source, amount=amount):
            incoming, noted = _without_credit(state, source, tid)
            return replace(
                state,
                incoming=incoming,
                pending_credits=state.pending_credits - noted.amount,
                balance=state.balance + amount,
            )
        case PendingCreditReleased(transfer_id=tid, source=source):
            incoming, noted = _without_credit(state, source, tid)
            return replace(
                state, incoming=incoming, pending_credits=state.pending_credits - noted.amount
            )
        case PendingCreditAwaited(transfer_id=tid, source=source, seq=seq, awaiting=leg):
            key = awaited_key(source, tid, seq)
            return replace(state, awaited={**state.awaited, key: leg})
        case PendingCreditPaired(transfer_id=tid, source=source, seq=seq):
            key = awaited_key(source, tid, seq)
            if key not in state.awaited:
                raise ValueError(f"nothing awaited of pending transfer {tid!r} from {source!r}")
            return replace(state, awaited={k: v for k, v in state.awaited.items() if k != key})
        case _:
            assert_never(event)


def _ended(state: Account, transfer_id: str, how: str) -> dict[str, str]:
    """`state.ended` with `transfer_id` ended `how`, as the newest, keeping `ENDED_KEPT`."""
    ended = {k: v for k, v in state.ended.items() if k != transfer_id}
    ended[transfer_id] = how
    while len(ended) > ENDED_KEPT:
        del ended[next(iter(ended))]
    return ended


def _without(state: Account, transfer_id: str) -> tuple[dict[str, Pending], Pending]:
    """The open reservations out without `transfer_id`, and that one."""
    pending = state.pending.get(transfer_id)
    if pending is None:
        raise ValueError(f"no open pending transfer {transfer_id!r} out")
    return {k: v for k, v in state.pending.items() if k != transfer_id}, pending


def _without_credit(
    state: Account, source: str, transfer_id: str
) -> tuple[dict[str, dict[str, Pending]], Pending]:
    """The noted credits without `source`'s `transfer_id`, and that one (`source` "": an
    event written before credits were kept per source names the first that matches)."""
    if not source:
        source = next((s for s, c in state.incoming.items() if transfer_id in c), "")
    noted = state.incoming.get(source, {}).get(transfer_id)
    if noted is None:
        raise ValueError(f"no pending credit {transfer_id!r} from {source!r}")
    rest = {k: v for k, v in state.incoming[source].items() if k != transfer_id}
    incoming = {s: c for s, c in state.incoming.items() if s != source}
    if rest:
        incoming[source] = rest
    return incoming, noted
