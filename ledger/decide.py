"""The account rules: given the current state and a command, the events or a rejection (or,
for a transfer's legs, a `Decision`: events plus commands to other accounts)."""

import re
from typing import assert_never

from eventledger.ledger.commands import (
    CloseAccount,
    Command,
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from eventledger.ledger.decision import Context, Decision, Send
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
from eventledger.ledger.internal import (
    CreditTransfer,
    ExpirePending,
    InternalCommand,
    NotePendingCredit,
    RefundTransfer,
    ReleasePendingCredit,
    SettlePendingCredit,
    VoidRefusedPending,
    leg_id,
)
from eventledger.ledger.rejections import Rejection, RejectionCode
from eventledger.ledger.state import MAX_MINOR_UNITS, Account

__all__ = ["decide", "due"]

_CURRENCY = re.compile("[A-Z]{3}")
MAX_ID_CHARS = 256  # the flow's limit on an account id
_NO_CONTEXT = Context("", "", 0)

Result = list[Event] | Rejection | Decision


def decide(
    state: Account | None, command: Command | InternalCommand, context: Context = _NO_CONTEXT
) -> Result:
    """Decide `command` against `state` (None: no such account) in `context`. Pure; checks
    in order: command shape, account lifecycle, then money rules. (An expected version is
    checked by the flow, against the version it keeps, before the domain decides.)"""
    if isinstance(command, InternalCommand):
        return _leg(state, command, context)
    invalid = _invalid(command, context)
    if invalid is not None:
        return invalid
    if isinstance(command, OpenAccount):
        return _open(state, command)
    if state is None:
        return Rejection(RejectionCode.UNKNOWN_ACCOUNT, "no such account")
    if state.status == "closed":
        return Rejection(RejectionCode.ACCOUNT_CLOSED, "the account is closed")
    match command:
        case Deposit(amount=amount):
            if state.balance + amount > MAX_MINOR_UNITS:
                return Rejection(
                    RejectionCode.LIMIT_EXCEEDED, f"the balance would exceed {MAX_MINOR_UNITS}"
                )
            return [Deposited(amount)]
        case Withdraw(amount=amount):
            return _funds(state, amount, "withdraw") or [Withdrawn(amount)]
        case CloseAccount():
            if state.balance != 0:
                return Rejection(
                    RejectionCode.NONZERO_BALANCE, f"balance is {state.balance}, not 0"
                )
            if state.pending:
                return Rejection(
                    RejectionCode.PENDING_TRANSFERS,
                    f"{len(state.pending)} pending transfers are open",
                )
            return [AccountClosed()]
        case Transfer():
            return _transfer(state, command, context)
        case PostPending() | VoidPending():
            return _finish_pending(state, command, context)
        case _:
            assert_never(command)


def due(account_id: str, state: Account, now_ms: int) -> list[Send]:
    """The expiry commands of `state`'s pending transfers due at `now_ms` (sent to itself)."""
    return [
        Send(account_id, ExpirePending(tid), leg_id(tid, "expire"))
        for tid, p in state.pending.items()
        if p.direction == "out" and p.expires_ms is not None and p.expires_ms <= now_ms
    ]


def _funds(state: Account, amount: int, what: str) -> Rejection | None:
    if state.available < amount:
        return Rejection(
            RejectionCode.INSUFFICIENT_FUNDS,
            f"cannot {what} {amount}: {state.available} available",
        )
    return None


def _transfer(state: Account, command: Transfer, context: Context) -> Result:
    refused = _funds(state, command.amount, "transfer")
    if refused is not None:
        return refused
    tid, to, amount = context.command_id, command.to, command.amount
    if not command.pending:
        credit = CreditTransfer(tid, context.account_id, amount, state.currency)
        return Decision(
            [TransferDebited(tid, to, amount)],
            [Send(to, credit, leg_id(tid, "credit"))],
            final=False,
        )
    expires = None if command.timeout_ms is None else context.now_ms + command.timeout_ms
    note = NotePendingCredit(tid, context.account_id, amount, state.currency)
    return Decision(
        [PendingReserved(tid, to, amount, expires)],
        [Send(to, note, leg_id(tid, "note"))],
        final=False,
    )


def _finish_pending(state: Account, command: PostPending | VoidPending, context: Context) -> Result:
    tid = command.transfer_id
    pending = state.pending.get(tid)
    if pending is None or pending.direction != "out":
        return Rejection(RejectionCode.UNKNOWN_PENDING, f"no open pending transfer {tid!r} here")
    if pending.expires_ms is not None and pending.expires_ms <= context.now_ms:
        return Rejection(RejectionCode.PENDING_EXPIRED, f"pending transfer {tid!r} expired")
    if isinstance(command, VoidPending):
        release = ReleasePendingCredit(tid)
        return Decision(
            [PendingVoided(tid, "voided")], [Send(pending.other, release, leg_id(tid, "release"))]
        )
    amount = pending.amount if command.amount is None else command.amount
    if amount > pending.amount:
        return Rejection(
            RejectionCode.INVALID_COMMAND,
            f"cannot post {amount}: only {pending.amount} is reserved",
        )
    settle = SettlePendingCredit(tid, context.account_id, amount)
    return Decision(
        [PendingPosted(tid, pending.other, amount)],
        [Send(pending.other, settle, leg_id(tid, "settle"))],
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
    if state.balance + state.pending_credits + amount > MAX_MINOR_UNITS:
        return Rejection(
            RejectionCode.LIMIT_EXCEEDED, f"the target's balance would exceed {MAX_MINOR_UNITS}"
        )
    return None


def _leg(state: Account | None, command: InternalCommand, context: Context) -> Result:
    """An internal command: a leg of a transfer (`eventledger.ledger.internal`)."""
    match command:
        case CreditTransfer(transfer_id=tid, source=source, amount=amount, currency=currency):
            refused = _receivable(state, currency, amount)
            if refused is None:
                return Decision([TransferCredited(tid, source, amount)])
            refund = RefundTransfer(tid, context.account_id, amount, refused.code)
            return Decision(
                [], [Send(source, refund, leg_id(tid, "refund"))], final=False, refusal=refused
            )
        case NotePendingCredit(transfer_id=tid, source=source, amount=amount, currency=currency):
            refused = _receivable(state, currency, amount)
            if refused is None:
                return Decision([PendingCreditNoted(tid, source, amount)])
            void = VoidRefusedPending(tid, refused.code)
            return Decision(
                [], [Send(source, void, leg_id(tid, "void-refused"))], final=False, refusal=refused
            )
        case SettlePendingCredit(transfer_id=tid, source=source, amount=amount):
            noted = None if state is None else state.pending.get(tid)
            if noted is not None and noted.direction == "in":
                return Decision([PendingCreditSettled(tid, source, amount)])
            # posted before the target's refusal of the reservation reached the source
            refused = Rejection(RejectionCode.UNKNOWN_PENDING, f"no pending credit {tid!r}")
            refund = RefundTransfer(tid, context.account_id, amount, refused.code)
            return Decision([], [Send(source, refund, leg_id(tid, "refund"))], refusal=refused)
        case ReleasePendingCredit(transfer_id=tid):
            noted = None if state is None else state.pending.get(tid)
            if noted is not None and noted.direction == "in":
                return Decision([PendingCreditReleased(tid)])
            return Decision([])  # the reservation was refused here: nothing to release
        case RefundTransfer(transfer_id=tid, target=target, amount=amount, code=code):
            if state is None:
                return Rejection(RejectionCode.UNKNOWN_ACCOUNT, "no such account")
            return Decision([TransferReversed(tid, target, amount, code)])
        case VoidRefusedPending(transfer_id=tid) | ExpirePending(transfer_id=tid):
            reserved = None if state is None else state.pending.get(tid)
            if reserved is None or reserved.direction != "out":
                return Decision([])  # already posted or voided: never two of them
            if isinstance(command, VoidRefusedPending):
                return Decision([PendingVoided(tid, "refused")])
            if reserved.expires_ms is None or reserved.expires_ms > context.now_ms:
                return Decision([])
            release = ReleasePendingCredit(tid)
            return Decision(
                [PendingVoided(tid, "expired")],
                [Send(reserved.other, release, leg_id(tid, "release"))],
            )
        case _:
            assert_never(command)


def _open(state: Account | None, command: OpenAccount) -> list[Event] | Rejection:
    if state is None:
        return [AccountOpened(command.currency, command.overdraft_limit)]
    if state.status == "closed":
        return Rejection(RejectionCode.ACCOUNT_CLOSED, "the account is closed; ids are not reused")
    return Rejection(RejectionCode.ALREADY_OPEN, "the account is already open")


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
