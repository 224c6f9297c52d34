"""Properties of the account rules over random command sequences."""

from collections import defaultdict
from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    Account,
    Command,
    Deposited,
    Event,
    Withdrawn,
    decide,
    evolve,
)

from .support import ACCOUNTS
from .support import commands as command_strategy

commands = command_strategy(
    currencies=st.sampled_from(["EUR", "USD", "eur", "EURO"]),
    limits=st.one_of(st.just(0), st.integers(-10, 5_000)),
    amounts=st.one_of(st.integers(-3, 3), st.integers(1, 10_000)),
)
steps = st.lists(
    st.tuples(
        st.sampled_from(ACCOUNTS),
        commands,
        st.one_of(st.none(), st.integers(0, 6)),
    ),
    max_size=80,
)


@given(steps)
def test_state_is_the_fold_of_the_events_and_money_is_conserved(
    sequence: list[tuple[str, Command, int | None]],
) -> None:
    states: dict[str, Account | None] = dict.fromkeys(ACCOUNTS)
    logs: dict[str, list[Event]] = defaultdict(list)
    deposited = withdrawn = 0
    for account, command, _ in sequence:
        result = decide(states[account], command)
        if result.rejection is not None:
            assert result.events == []
            continue
        for event in result.events:
            state = evolve(states[account], event)
            states[account] = state
            logs[account].append(event)
            assert state.balance >= -state.overdraft_limit
            if isinstance(event, Deposited):
                deposited += event.amount
            elif isinstance(event, Withdrawn):
                withdrawn += event.amount
    for account in ACCOUNTS:
        assert states[account] == reduce(evolve, logs[account], None)
    balances = sum(state.balance for state in states.values() if state is not None)
    assert balances == deposited - withdrawn
