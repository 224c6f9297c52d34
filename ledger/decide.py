"""The account rules: given the current state and a command, one `Decision`: the events, or a
rejection, and for a transfer and its legs the commands to send to other accounts. (Past 400
lines: every command's and every leg's rules, kept in one place to read top to bottom.)"""

import re
from typing import assert_never

import msgspec

from ledger.commands import (
    CloseAccount,
    Command,
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from ledger.decision import Context, Decision, Send
from ledger.events import (
    AccountClosed,
    AccountOpened,
    Deposited,
    Event,
    ForcedAction,
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
from ledger.internal import (
    ConfirmCredit,
    CreditTransfer,
    ExpirePending,
    ForcedLeg,
    InternalCommand,
    NotePendingCredit,
    RefundTransfer,
    ReleasePendingCredit,
    SettlePendingCredit,
    VoidRefusedPending,
    leg_id,
)
from ledger.pairs import end_unnoted, note_awaited, note_refused
from ledger.rejections import Rejection, RejectionCode
from ledger.state import MAX_MINOR_UNITS, Account, Pending

__all__ = ["decide", "due"]

_CURRENCY = re.compile("[A-Z]{3}")
MAX_ID_CHARS = 256  # the flow's limit on an account id
_NO_CONTEXT = Context("", "", 0)


def decide(
    state: Account | None, command: Command | InternalCommand, context: Context = _NO_CONTEXT
) -> Decision:
    """Decide `command` against `state` (None: no such account) in `context`. Pure; checks
    in order: command shape, account lifecycle, then money rules. (An expected version is
    checked by the flow, against the version it keeps, before the domain decides.)"""
    if isinstance(command, InternalCommand):
        return _leg(state, command, context)
    invalid = _invalid(command, context)
    if invalid is not None:
        return Decision(rejection=invalid)
    if isinstance(command, OpenAccount):
        return _open(state, command)
    if state is None:
        return Decision.reject(RejectionCode.UNKNOWN_ACCOUNT, "no such account")
    if state.status == "closed":
        return Decision.reject(RejectionCode.ACCOUNT_CLOSED, "the account is closed")
    match command:
        case Deposit(amount=amount):
            if amount > state.headroom:
                return Decision.reject(
                    RejectionCode.LIMIT_EXCEEDED,
                    f"the balance would exceed {MAX_MINOR_UNITS} (pending credits and money "
                    "that may come back included)",
                )
            return Decision([Deposited(amount)])
        case Withdraw(amount=amount):
            refused = _funds(state, amount, "withdraw")
            if refused is not None:
                return Decision(rejection=refused)
            return Decision([Withdrawn(amount)])
        case CloseAccount():
            if state.balance != 0:
                return Decision.reject(
                    RejectionCode.NONZERO_BALANCE, f"balance is {state.balance}, not 0"
                )
            if state.pending or state.incoming:
                opened = len(state.pending) + state.open_in
                return Decision.reject(
                    RejectionCode.PENDING_TRANSFERS, f"{opened} pending transfers are open"
                )
            if state.sending:
                return Decision.reject(
                    RejectionCode.TRANSFERS_IN_FLIGHT,
                    f"{len(state.sending)} transfers sent from here have not landed yet (a "
                    "refund may still come back); close once they have",
                )
            return Decision([AccountClosed()])
        case Transfer():
            return _transfer(state, command, context)
        case PostPending() | VoidPending():
            return _finish_pending(state, command, context)
        case _:
            assert_never(command)


def due(account_id: str, state: Account, now_ms: int) -> list[Send]:
    """The expiry commands of `state`'s pending transfers due at `now_ms` (sent to itself)."""
    return [
        Send(account_id, ExpirePending(tid, p.seq), leg_id("expire", account_id, tid, p.seq))
        for tid, p in state.pending.items()
        if p.expires_ms is not None and p.expires_ms <= now_ms
    ]


def _funds(state: Account, amount: int, what: str) -> Rejection | None:
    if state.available < amount:
        return Rejection(
            RejectionCode.INSUFFICIENT_FUNDS,
            f"cannot {what} {amount}: {state.available} available",
        )
    if state.pending_debits + amount > MAX_MINOR_UNITS:  # a large overdraft allows more
        return Rejection(
            RejectionCode.LIMIT_EXCEEDED, f"the reservations would exceed {MAX_MINOR_UNITS}"
        )
    return None


def _transfer(state: Account, command: Transfer, context: Context) -> Decision:
    refused = _funds(state, command.amount, "transfer")
    if refused is not None:
        return Decision(rejection=refused)
    tid, to, amount, me = context.command_id, command.to, command.amount, context.account_id
    if tid in state.pending or tid in state.sending:
        return Decision.reject(
            RejectionCode.TRANSFER_OPEN,
            f"transfer {tid!r} from this account is still open; use a new id",
        )
    if state.open_out >= context.max_open_transfers:
        return Decision.reject(
            RejectionCode.TOO_MANY_OPEN_TRANSFERS,
            f"{state.open_out} transfers from this account are open (reserved, or sent and "
            f"not landed yet), the most it may hold ({context.max_open_transfers}): post or "
            "void a reservation, or wait for transfers to land",
        )
    seq = context.version + 1  # the sequence of the event below: names this transfer
    if not command.pending:
        credit = CreditTransfer(tid, me, amount, state.currency, seq)
        return Decision(
            [TransferDebited(tid, to, amount, seq, context.now_ms)],
            [Send(to, credit, leg_id("credit", me, tid, seq))],
            final=False,
        )
    expires = None if command.timeout_ms is None else context.now_ms + command.timeout_ms
    note = NotePendingCredit(tid, me, amount, state.currency, seq)
    return Decision(
        [PendingReserved(tid, to, amount, expires, seq)],
        [Send(to, note, leg_id("note", me, tid, seq))],
        final=False,
    )


def _finish_pending(
    state: Account, command: PostPending | VoidPending, context: Context
) -> Decision:
    tid, me = command.transfer_id, context.account_id
    pending = state.pending.get(tid)
    if pending is None:
        how = state.ended.get(tid)
        if how == "expired":
            return Decision.reject(
                RejectionCode.PENDING_EXPIRED, f"pending transfer {tid!r} expired"
            )
        if how is not None:
            return Decision.reject(
                RejectionCode.UNKNOWN_PENDING, f"pending transfer {tid!r} was already {how}"
            )
        return Decision.reject(
            RejectionCode.UNKNOWN_PENDING, f"no open pending transfer {tid!r} here"
        )
    if pending.expires_ms is not None and pending.expires_ms <= context.now_ms:
        return Decision.reject(RejectionCode.PENDING_EXPIRED, f"pending transfer {tid!r} expired")
    seq = pending.seq
    if isinstance(command, VoidPending):
        release = ReleasePendingCredit(tid, me, seq)
        return Decision(
            [PendingVoided(tid, "voided")],
            [Send(pending.other, release, leg_id("release", me, tid, seq))],
        )
    amount = pending.amount if command.amount is None else command.amount
    if amount > pending.amount:
        return Decision.reject(
            RejectionCode.INVALID_COMMAND,
            f"cannot post {amount}: only {pending.amount} is reserved",
        )
    settle = SettlePendingCredit(tid, me, amount, seq)
    return Decision(
        [PendingPosted(tid, pending.other, amount, context.now_ms)],
        [Send(pending.other, settle, leg_id("settle", me, tid, seq))],
    )


def _receivable(state: Account | None, currency: str, amount: int) -> Rejection | None:
    """Why the target of a transfer cannot take `amount` of `currency`, if it cannot."""
    if state is None:
        return Rejection(RejectionCode.UNKNOWN_ACCOUNT, "the target account does not exist")
    if state.status == "closed":
        return Rejection(RejectionCode.ACCOUNT_CLOSED, "the target account is closed")
    if state.currency != currency:
        return Rejection(
            RejectionCode.CURRENCY_MISMATCH,
            f"the target account is in {state.currency}, not {currency}",
        )
    if amount > state.headroom:
        return Rejection(
            RejectionCode.LIMIT_EXCEEDED, f"the target's balance would exceed {MAX_MINOR_UNITS}"
        )
    return None


def _room_for_credit(state: Account | None, context: Context) -> Rejection | None:
    """Why the target cannot note one more pending credit: it holds the most it may. Refused
    like any target's refusal: the source's reservation is voided, no money moved."""
    if state is None or state.open_in < context.max_open_transfers:
        return None
    return Rejection(
        RejectionCode.TOO_MANY_OPEN_TRANSFERS,
        f"the target account has {state.open_in} pending credits open, the most it may hold "
        f"({context.max_open_transfers})",
    )


def _mine(entry: Pending | None, seq: int) -> Pending | None:
    """`entry` if it is the transfer a leg names (its `seq`), else None."""
    return entry if entry is not None and entry.seq == seq else None


def _forced(state: Account | None, command: ForcedLeg, context: Context) -> Decision:
    """An operator's settlement of a lost leg: done as it was, or (`refund`) refused so the
    money goes back; either way recorded on this account (when it exists) by whom and why.
    A lost reservation note is always refused (its reservation voided): it moves no money,
    and done late it could note a credit whose release already came and went."""
    leg, me = command.leg, context.account_id
    counterparty = str(getattr(leg, "source", None) or getattr(leg, "target", ""))
    refund = command.refund or isinstance(leg, NotePendingCredit)
    action: ForcedAction = "refund" if refund else "redrive"
    forced = TransferForced(leg.transfer_id, counterparty, action, command.operator, command.reason)
    recorded: list[Event] = [] if state is None else [forced]
    if not refund or not isinstance(leg, CreditTransfer | SettlePendingCredit | NotePendingCredit):
        done = _leg(state, leg, context)
        return msgspec.structs.replace(done, events=[*recorded, *done.events])
    refused = Rejection(
        RejectionCode.REFUSED_BY_OPERATOR,
        f"refused by {command.operator}: {command.reason}",
    )
    tid, seq = leg.transfer_id, leg.seq
    if isinstance(leg, NotePendingCredit):  # awaits no end: it must not grow its target
        if note_awaited(state, leg.source, tid, seq):
            recorded.append(PendingCreditPaired(tid, leg.source, seq))
        void = VoidRefusedPending(tid, refused.code, seq)
        send = Send(leg.source, void, leg_id("void-refused", leg.source, tid, seq))
    else:
        back = RefundTransfer(tid, me, leg.amount, refused.code, seq)
        send = Send(leg.source, back, leg_id("refund", leg.source, tid, seq))
    if isinstance(leg, SettlePendingCredit) and state is not None:
        noted = state.incoming.get(leg.source, {}).get(tid)
        if _mine(noted, seq) is not None:  # the credit noted for it ends with it
            recorded.append(PendingCreditReleased(tid, leg.source))
        else:
            recorded.extend(end_unnoted(state, leg.source, tid, seq))
    final = isinstance(leg, SettlePendingCredit)  # as the leg's own refusal would be
    return Decision(recorded, [send], final=final, rejection=refused)


def _leg(state: Account | None, command: InternalCommand, context: Context) -> Decision:
    """An internal command: a leg of a transfer (`ledger.internal`). A leg acts
    only on the transfer it names (source, transfer id, seq); money sent always lands: a
    refused credit goes back to the source (whose account cannot have closed meanwhile)."""
    me = context.account_id
    match command:
        case ForcedLeg():
            return _forced(state, command, context)
        case CreditTransfer(
            transfer_id=tid, source=source, amount=amount, currency=currency, seq=seq
        ):
            refused = _receivable(state, currency, amount)
            if refused is None:
                confirm = ConfirmCredit(tid, me, seq)
                return Decision(
                    [TransferCredited(tid, source, amount)],
                    [Send(source, confirm, leg_id("confirm", source, tid, seq))],
                )
            refund = RefundTransfer(tid, me, amount, refused.code, seq)
            return Decision(
                [],
                [Send(source, refund, leg_id("refund", source, tid, seq))],
                final=False,
                rejection=refused,
            )
        case NotePendingCredit(
            transfer_id=tid, source=source, amount=amount, currency=currency, seq=seq
        ):
            if note_awaited(state, source, tid, seq):  # its end came first: noted and ended
                return Decision([PendingCreditPaired(tid, source, seq)])
            refused = _receivable(state, currency, amount) or _room_for_credit(state, context)
            if refused is None:
                return Decision([PendingCreditNoted(tid, source, amount, seq)])
            paired, end = note_refused(state, source, tid, seq)
            void = VoidRefusedPending(tid, refused.code, seq, end)
            return Decision(
                paired,
                [Send(source, void, leg_id("void-refused", source, tid, seq))],
                final=False,
                rejection=refused,
            )
        case SettlePendingCredit(transfer_id=tid, source=source, amount=amount, seq=seq):
            noted = None if state is None else state.incoming.get(source, {}).get(tid)
            if _mine(noted, seq) is not None:
                confirm = ConfirmCredit(tid, me, seq)
                return Decision(
                    [PendingCreditSettled(tid, source, amount)],
                    [Send(source, confirm, leg_id("confirm", source, tid, seq))],
                )
            # posted before the target's refusal of the reservation reached the source
            refused = Rejection(RejectionCode.UNKNOWN_PENDING, f"no pending credit {tid!r}")
            refund = RefundTransfer(tid, me, amount, refused.code, seq)
            return Decision(
                end_unnoted(state, source, tid, seq),
                [Send(source, refund, leg_id("refund", source, tid, seq))],
                rejection=refused,
            )
        case ReleasePendingCredit(transfer_id=tid, source=source, seq=seq):
            if state is not None and not source:  # a leg sent before credits were per source
                source = next((s for s, c in state.incoming.items() if tid in c), "")
            noted = None if state is None else state.incoming.get(source, {}).get(tid)
            if _mine(noted, seq) is not None:
                return Decision([PendingCreditReleased(tid, source)])
            return Decision(end_unnoted(state, source, tid, seq))  # refused, or overtook it
        case RefundTransfer(transfer_id=tid, target=target, amount=amount, code=code, seq=seq):
            if state is None:
                return Decision.reject(RejectionCode.UNKNOWN_ACCOUNT, "no such account")
            # In flight here, the headroom already holds it. Not in flight (sent before
            # accounts kept `sending`, or read by a stale writer whose successor sent it),
            # it lands only within the headroom: a balance never passes int64.
            if _mine(state.sending.get(tid), seq) is None and amount > state.headroom:
                return Decision.reject(
                    RejectionCode.LIMIT_EXCEEDED,
                    f"a refund of a transfer not in flight here would take the balance past "
                    f"{MAX_MINOR_UNITS}",
                )
            return Decision([TransferReversed(tid, target, amount, code)])
        case ConfirmCredit(transfer_id=tid, target=target, seq=seq):
            sent = None if state is None else _mine(state.sending.get(tid), seq)
            if sent is None:
                return Decision([])  # already ended (a leg sent again is not a second end)
            return Decision([TransferCompleted(tid, target)])
        case VoidRefusedPending(transfer_id=tid, seq=seq) | ExpirePending(transfer_id=tid, seq=seq):
            reserved = None if state is None else _mine(state.pending.get(tid), seq)
            if reserved is None:
                return Decision([])  # already posted or voided: never two of them
            if isinstance(command, VoidRefusedPending):  # the target may await its end
                release = ReleasePendingCredit(tid, me, seq)
                ends = [Send(reserved.other, release, leg_id("release", me, tid, seq))]
                return Decision([PendingVoided(tid, "refused")], ends if command.end else [])
            if reserved.expires_ms is None or reserved.expires_ms > context.now_ms:
                return Decision([])
            release = ReleasePendingCredit(tid, me, seq)
            return Decision(
                [PendingVoided(tid, "expired")],
                [Send(reserved.other, release, leg_id("release", me, tid, seq))],
            )
        case _:
            assert_never(command)


def _open(state: Account | None, command: OpenAccount) -> Decision:
    if state is None:
        return Decision([AccountOpened(command.currency, command.overdraft_limit)])
    if state.status == "closed":
        return Decision.reject(
            RejectionCode.ACCOUNT_CLOSED, "the account is closed; ids are not reused"
        )
    return Decision.reject(RejectionCode.ALREADY_OPEN, "the account is already open")


def _positive(amount: int) -> Rejection | None:
    if amount <= 0:
        return Rejection(
            RejectionCode.AMOUNT_NOT_POSITIVE, f"amount must be positive, got {amount}"
        )
    if amount > MAX_MINOR_UNITS:
        return Rejection(RejectionCode.LIMIT_EXCEEDED, f"amount must be at most {MAX_MINOR_UNITS}")
    return None


def _invalid(command: Command, context: Context) -> Rejection | None:
    """Stateless checks of the command's own fields."""
    match command:
        case OpenAccount(currency=currency, overdraft_limit=limit):
            if _CURRENCY.fullmatch(currency) is None:
                return Rejection(
                    RejectionCode.INVALID_COMMAND,
                    f"currency must be three uppercase letters, got {currency!r}",
                )
            if not 0 <= limit <= MAX_MINOR_UNITS:
                return Rejection(
                    RejectionCode.INVALID_COMMAND,
                    f"overdraft limit must be in [0, {MAX_MINOR_UNITS}], got {limit}",
                )
        case Deposit(amount=amount) | Withdraw(amount=amount):
            return _positive(amount)
        case Transfer(to=to, amount=amount, pending=pending, timeout_ms=timeout):
            if not 0 < len(to) <= MAX_ID_CHARS:
                return Rejection(
                    RejectionCode.INVALID_COMMAND,
                    f"the target account id must be 1 to {MAX_ID_CHARS} characters",
                )
            if to == context.account_id:
                return Rejection(RejectionCode.SAME_ACCOUNT, "source and target are the same")
            if timeout is not None and (not pending or not 0 < timeout <= MAX_MINOR_UNITS // 2):
                return Rejection(
                    RejectionCode.INVALID_COMMAND,
                    "timeout_ms must be positive, and only a pending transfer has one",
                )
            return _positive(amount)
        case PostPending(amount=amount) if amount is not None:
            return _positive(amount)
    return None
