"""The account rules: given the current state and a command, the events or a rejection."""

import re
from typing import assert_never

from ledger.commands import CloseAccount, Command, Deposit, OpenAccount, Withdraw
from ledger.events import AccountClosed, AccountOpened, Deposited, Event, Withdrawn
from ledger.rejections import Rejection, RejectionCode
from ledger.state import MAX_MINOR_UNITS, Account

__all__ = ["decide"]

_CURRENCY = re.compile("[A-Z]{3}")


def decide(state: Account | None, command: Command) -> list[Event] | Rejection:
    """Decide `command` against `state` (None: no such account). Pure; checks in order:
    command shape, account lifecycle, then money rules. (An expected version is checked by
    the flow, against the version it keeps, before the domain decides.)"""
    invalid = _invalid(command)
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
            available = state.balance + state.overdraft_limit
            if available < amount:
                return Rejection(
                    RejectionCode.INSUFFICIENT_FUNDS,
                    f"cannot withdraw {amount}: {available} available",
                )
            return [Withdrawn(amount)]
        case CloseAccount():
            if state.balance != 0:
                return Rejection(
                    RejectionCode.NONZERO_BALANCE, f"balance is {state.balance}, not 0"
                )
            return [AccountClosed()]
        case _:
            assert_never(command)


def _open(state: Account | None, command: OpenAccount) -> list[Event] | Rejection:
    if state is None:
        return [AccountOpened(command.currency, command.overdraft_limit)]
    if state.status == "closed":
        return Rejection(RejectionCode.ACCOUNT_CLOSED, "the account is closed; ids are not reused")
    return Rejection(RejectionCode.ALREADY_OPEN, "the account is already open")


def _invalid(command: Command) -> Rejection | None:
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
            if amount <= 0:
                return Rejection(
                    RejectionCode.AMOUNT_NOT_POSITIVE, f"amount must be positive, got {amount}"
                )
            if amount > MAX_MINOR_UNITS:
                return Rejection(
                    RejectionCode.LIMIT_EXCEEDED, f"amount must be at most {MAX_MINOR_UNITS}"
                )
    return None
