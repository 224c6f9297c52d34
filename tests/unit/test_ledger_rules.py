"""The account rules as given / when / then: given these events, when this command, then
these events or this rejection."""

from functools import reduce

import pytest

from ledger import (
    LEDGER,
    MAX_MINOR_UNITS,
    Account,
    AccountClosed,
    AccountOpened,
    AccountView,
    CloseAccount,
    Command,
    Decision,
    Deposit,
    Deposited,
    Event,
    OpenAccount,
    RejectionCode,
    Withdraw,
    Withdrawn,
    decide,
    evolve,
    view,
)

OPENED = AccountOpened("EUR", 0)
OPENED_WITH_OVERDRAFT = AccountOpened("EUR", 500)


def given(*events: Event) -> Account | None:
    """The state after `events`, from no account."""
    return reduce(evolve, events, None)


def rejected(result: Decision, code: RejectionCode) -> None:
    """Then: this rejection, with a message for humans, and no events."""
    assert result.rejection is not None, f"expected {code}, got events {result.events}"
    assert result.rejection.code == code
    assert result.rejection.message
    assert result.events == []


# --- opening ---------------------------------------------------------------------------


def test_open_a_new_account() -> None:
    assert decide(given(), OpenAccount("EUR")) == Decision([AccountOpened("EUR", 0)])


def test_open_with_overdraft_limit() -> None:
    assert decide(given(), OpenAccount("USD", 1_000)) == Decision([AccountOpened("USD", 1_000)])


def test_open_an_open_account_is_rejected() -> None:
    rejected(decide(given(OPENED), OpenAccount("EUR")), RejectionCode.ALREADY_OPEN)


def test_reopen_a_closed_account_is_rejected() -> None:
    state = given(OPENED, AccountClosed())
    rejected(decide(state, OpenAccount("EUR")), RejectionCode.ACCOUNT_CLOSED)


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "E1R", "", "ÉUR", "€€€"])
def test_open_with_a_bad_currency_is_invalid(currency: str) -> None:
    rejected(decide(given(), OpenAccount(currency)), RejectionCode.INVALID_COMMAND)


@pytest.mark.parametrize("limit", [-1, MAX_MINOR_UNITS + 1])
def test_open_with_an_out_of_range_overdraft_is_invalid(limit: int) -> None:
    rejected(decide(given(), OpenAccount("EUR", limit)), RejectionCode.INVALID_COMMAND)


# --- unknown and closed accounts -----------------------------------------------------------


@pytest.mark.parametrize("command", [Deposit(1), Withdraw(1), CloseAccount()])
def test_commands_to_an_unknown_account_are_rejected(command: Command) -> None:
    rejected(decide(given(), command), RejectionCode.UNKNOWN_ACCOUNT)


@pytest.mark.parametrize("command", [Deposit(1), Withdraw(1), CloseAccount()])
def test_commands_to_a_closed_account_are_rejected(command: Command) -> None:
    rejected(decide(given(OPENED, AccountClosed()), command), RejectionCode.ACCOUNT_CLOSED)


# --- deposits ------------------------------------------------------------------------------


def test_deposit_credits_the_account() -> None:
    assert decide(given(OPENED), Deposit(250)) == Decision([Deposited(250)])


@pytest.mark.parametrize("amount", [0, -5])
def test_deposit_must_be_positive(amount: int) -> None:
    rejected(decide(given(OPENED), Deposit(amount)), RejectionCode.AMOUNT_NOT_POSITIVE)


def test_deposit_may_not_overflow_the_balance() -> None:
    state = given(OPENED, Deposited(MAX_MINOR_UNITS - 10))
    assert decide(state, Deposit(10)) == Decision([Deposited(10)])
    rejected(decide(state, Deposit(11)), RejectionCode.LIMIT_EXCEEDED)


def test_deposit_above_the_money_limit_is_rejected() -> None:
    rejected(decide(given(OPENED), Deposit(MAX_MINOR_UNITS + 1)), RejectionCode.LIMIT_EXCEEDED)


# --- withdrawals ---------------------------------------------------------------------------


def test_withdraw_debits_the_account() -> None:
    assert decide(given(OPENED, Deposited(100)), Withdraw(100)) == Decision([Withdrawn(100)])


def test_withdraw_more_than_the_balance_is_rejected() -> None:
    state = given(OPENED, Deposited(100))
    rejected(decide(state, Withdraw(101)), RejectionCode.INSUFFICIENT_FUNDS)


def test_withdraw_into_the_overdraft() -> None:
    state = given(OPENED_WITH_OVERDRAFT, Deposited(100))
    assert decide(state, Withdraw(600)) == Decision([Withdrawn(600)])
    rejected(decide(state, Withdraw(601)), RejectionCode.INSUFFICIENT_FUNDS)


@pytest.mark.parametrize("amount", [0, -1])
def test_withdraw_must_be_positive(amount: int) -> None:
    rejected(decide(given(OPENED), Withdraw(amount)), RejectionCode.AMOUNT_NOT_POSITIVE)


# --- closing -------------------------------------------------------------------------------


def test_close_an_empty_account() -> None:
    assert decide(given(OPENED, Deposited(5), Withdrawn(5)), CloseAccount()) == Decision(
        [AccountClosed()]
    )


@pytest.mark.parametrize("events", [(Deposited(1),), (Withdrawn(1),)])
def test_close_with_a_nonzero_balance_is_rejected(events: tuple[Event, ...]) -> None:
    state = given(OPENED_WITH_OVERDRAFT, *events)
    rejected(decide(state, CloseAccount()), RejectionCode.NONZERO_BALANCE)


# --- optimistic concurrency ----------------------------------------------------------------


# --- evolve and view -------------------------------------------------------------------------


def test_evolve_folds_balance_and_status() -> None:
    state = given(OPENED_WITH_OVERDRAFT, Deposited(70), Withdrawn(100))
    assert state == Account("open", "EUR", -30, 500)
    assert evolve(state, AccountClosed()) == Account("closed", "EUR", -30, 500)


@pytest.mark.parametrize("event", [Deposited(1), Withdrawn(1), AccountClosed()])
def test_evolve_rejects_an_event_before_opening(event: Event) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        evolve(None, event)


def test_evolve_rejects_opening_twice() -> None:
    with pytest.raises(ValueError, match="existing"):
        given(OPENED, OPENED)


def test_view_is_the_public_layout() -> None:
    state = given(OPENED_WITH_OVERDRAFT, Deposited(10))
    assert state is not None
    assert view(state, 2) == AccountView("open", "EUR", 10, 500, 2, available=510)


def test_aggregate_delegates_to_the_rules() -> None:
    state = given(OPENED)
    assert LEDGER.decide(state, Deposit(3)) == decide(state, Deposit(3))
    assert LEDGER.evolve(state, Deposited(3)) == evolve(state, Deposited(3))
    assert state is not None
    assert LEDGER.view(state, 4) == view(state, 4) == AccountView("open", "EUR", 0, 0, 4)
    assert LEDGER.name == "account"
    assert not LEDGER.upcasters
