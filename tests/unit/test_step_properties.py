"""Properties of the batch step over random batches: money is conserved, the state is the
fold of the emitted events, and retries never apply twice."""

from collections import defaultdict
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import (
    Account,
    Command,
    Deposited,
    Event,
    Withdrawn,
    evolve,
)
from topology.envelopes import EventEnvelope, Slot
from topology.restore import apply_event_record
from topology.step.records import InRecord

from .support import ACCOUNTS, LEDGER_CODEC, Memory, commit, record, run
from .support import commands as command_strategy

commands = command_strategy(
    currencies=st.just("EUR"), limits=st.integers(0, 300), amounts=st.integers(-5, 1_000)
)
# Few command ids, so that retries (of the same or another command) are frequent.
inputs = st.one_of(
    st.tuples(st.sampled_from(ACCOUNTS), commands, st.integers(0, 40).map(lambda n: f"c-{n}")),
    st.just(None),  # poison
)
batches = st.lists(st.lists(inputs, min_size=1, max_size=25), max_size=6)


@settings(max_examples=150, deadline=None)
@given(batches)
def test_money_is_conserved_and_state_is_the_fold_of_events(
    plan: list[list[tuple[str, Command, str] | None]],
) -> None:
    committed: dict[str, Slot] = {}
    ids = Memory()
    event_values: list[bytes] = []
    offset = 0
    for planned in plan:
        records = []
        for item in planned:
            if item is None:
                records.append(InRecord(offset, b"a", b"\x00poison"))
            else:
                aggregate_id, command, command_id = item
                records.append(record(offset, aggregate_id, command, command_id))
            offset += 1
        before = dict(committed)
        result = run(committed, records, ids=ids)
        assert committed == before
        event_values += [out.value or b"" for out in result.events]
        commit(committed, ids, result)

    logs: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    deposited = withdrawn = 0
    for value in event_values:
        envelope, event = LEDGER_CODEC.events.decode(value)
        logs[envelope.aggregate_id].append((envelope.sequence, event))
        if isinstance(event, Deposited):
            deposited += event.amount
        elif isinstance(event, Withdrawn):
            withdrawn += event.amount

    balances = 0
    for aggregate_id, slot in committed.items():
        log = logs[aggregate_id]
        assert [sequence for sequence, _ in log] == list(range(1, len(log) + 1))
        assert slot.version == len(log)
        state: Account | None = reduce(evolve, [event for _, event in log], None)
        assert slot.state == state
        if state is not None:
            assert state.balance >= -state.overdraft_limit
            balances += state.balance
    assert balances == deposited - withdrawn

    executed = [(e.aggregate_id, e.command_id) for e in map(_envelope, event_values)]
    assert len(executed) == len(set(executed)), "a command id was executed twice"

    rebuilt: dict[str, Slot] = {}
    for value in event_values:
        assert apply_event_record(LEDGER_CODEC, rebuilt, value)
    for aggregate_id, slot in rebuilt.items():
        assert (slot.state, slot.version) == (
            committed[aggregate_id].state,
            committed[aggregate_id].version,
        )


def _envelope(value: bytes) -> EventEnvelope:
    return LEDGER_CODEC.events.decode(value)[0]
