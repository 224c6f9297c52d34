"""The history of an aggregate, folded from its own events: pages, points in time, waypoints
(a fold from one equals the fold from the first event), the deadline, the index keys and the
local store that holds them."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.history import fold_start, waypoint_entries
from actors.history_store import HistoryStore
from ledger import LEDGER, AccountClosed, AccountOpened, Deposited, Withdrawn
from ledger.events import Event
from topology.codec.aggregate import Codec
from topology.codec.keys import (
    encode_history_key,
    encode_waypoint_key,
    history_prefix,
    waypoint_prefix,
)
from topology.codec.wire import CodecError
from topology.history import (
    MAX_PAGE,
    ORIGIN,
    WAYPOINT_EVERY,
    HistoryDeadlineError,
    QueryDeadline,
    Waypoint,
    history_page,
    last_at_or_before,
    state_at,
    waypoints,
)

CODEC = Codec(LEDGER)
EVENTS = [AccountOpened("EUR", 50), Deposited(100), Withdrawn(30), Deposited(5), Withdrawn(75)]


def _records(account: str = "alice", events: list[object] = EVENTS, t0: int = 1_000) -> list[bytes]:
    return [
        CODEC.events.encode(account, n, e, command_id=f"c{n}", timestamp_ms=t0 + 10 * n)  # type: ignore[arg-type]
        for n, e in enumerate(events, start=1)
    ]


def test_each_entry_has_its_event_and_the_resulting_balance() -> None:
    page = history_page(CODEC, "alice", _records(), after_version=0, limit=100)
    assert [e.sequence for e in page.entries] == [1, 2, 3, 4, 5]
    assert [e.view.balance for e in page.entries] == [0, 100, 70, 75, 0]
    assert [e.type for e in page.entries] == [
        "AccountOpened", "Deposited", "Withdrawn", "Deposited", "Withdrawn"
    ]  # fmt: skip
    assert page.entries[2].event == Withdrawn(30) and page.entries[2].command_id == "c3"
    assert page.entries[2].timestamp_ms == 1_030 and page.entries[2].view.version == 3
    assert page.next_after is None
    # money: the last balance is the sum of the moves
    assert page.entries[-1].view.balance == 100 - 30 + 5 - 75


def test_pages_follow_each_other_without_gap_or_repeat() -> None:
    seen, after = [], 0
    while True:
        page = history_page(CODEC, "alice", _records(), after_version=after, limit=2)
        seen += [e.sequence for e in page.entries]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("after", "limit"), [(-1, 10), (0, 0), (0, 1_001)])
def test_page_bounds_are_refused(after: int, limit: int) -> None:
    with pytest.raises(ValueError):
        history_page(CODEC, "alice", _records(), after_version=after, limit=limit)


def test_a_time_is_the_last_event_at_or_before_it() -> None:
    times = {n: 1_000 + 10 * n for n in range(1, 6)}  # the times of _records()
    assert last_at_or_before(1_005, 5, times.__getitem__) == 0  # before it was opened
    assert last_at_or_before(1_035, 5, times.__getitem__) == 3
    assert last_at_or_before(1_030, 5, times.__getitem__) == 3  # at an event: that event
    assert last_at_or_before(10**13, 5, times.__getitem__) == 5
    assert last_at_or_before(10**13, 0, times.__getitem__) == 0  # no events at all


@given(st.lists(st.integers(0, 50), max_size=300), st.integers(-10, 16_000))
def test_the_binary_search_finds_what_a_scan_finds(gaps: list[int], at_ms: int) -> None:
    times = [sum(gaps[: n + 1]) for n in range(len(gaps))]  # never decreasing, with ties
    looked: list[int] = []

    def timestamp_of(sequence: int) -> int:
        looked.append(sequence)
        return times[sequence - 1]

    scanned = sum(1 for t in times if t <= at_ms)
    assert last_at_or_before(at_ms, len(times), timestamp_of) == scanned
    assert len(looked) <= max(1, len(times)).bit_length()  # log2, not the history's length


def test_state_at_a_version() -> None:
    records = _records(events=[*EVENTS, AccountClosed()])
    at = state_at(CODEC, "alice", records, 2)
    assert at is not None and at.view.balance == 100 and at.view.status == "open"
    assert at.timestamp_ms == 1_020 and at.version == 2
    closed = state_at(CODEC, "alice", records, 6)
    assert closed is not None and closed.view.status == "closed"
    assert state_at(CODEC, "alice", records, 7) is None
    assert state_at(CODEC, "alice", records, 0) is None


def test_an_index_with_a_gap_does_not_answer() -> None:
    records = _records()
    del records[2]
    with pytest.raises(CodecError, match="sequence 4 where 3"):
        history_page(CODEC, "alice", records, after_version=0, limit=10)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40), st.integers(1, 2**40))
def test_no_aggregates_keys_fall_under_anothers_prefix(a: str, b: str, sequence: int) -> None:
    key = encode_history_key(b, sequence)
    assert key.startswith(history_prefix(a)) == (a == b)


@given(st.text(min_size=1, max_size=10), st.lists(st.integers(1, 2**40), min_size=2, unique=True))
def test_an_aggregates_keys_sort_by_sequence(a: str, sequences: list[int]) -> None:
    keys = sorted(encode_history_key(a, s) for s in sequences)
    assert keys == [encode_history_key(a, s) for s in sorted(sequences)]


@given(st.text(min_size=1, max_size=10), st.lists(st.integers(0, 2**40), min_size=2, unique=True))
def test_waypoint_keys_sort_by_sequence_apart_from_event_keys(a: str, sequences: list[int]) -> None:
    keys = sorted(encode_waypoint_key(a, s) for s in sequences)
    assert keys == [encode_waypoint_key(a, s) for s in sorted(sequences)]
    assert all(k.startswith(waypoint_prefix(a)) for k in keys)
    events = [encode_history_key(a, s) for s in sequences]
    assert all(not e.startswith(waypoint_prefix(a)) and e < keys[0] for e in events)


def test_the_store_keeps_each_aggregates_events_apart_and_its_position(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h", CODEC.waypoints.fold)
    alice, bob = _records("alice"), _records("bob", EVENTS[:2])
    entries = {encode_history_key("alice", n): r for n, r in enumerate(alice, start=1)}
    entries |= {encode_history_key("bob", n): r for n, r in enumerate(bob, start=1)}
    store.install(entries, 42)
    assert list(store.events("alice")) == alice
    assert list(store.events("bob")) == bob
    assert list(store.events("carol")) == []
    store.close()
    again = HistoryStore(tmp_path / "h", CODEC.waypoints.fold)
    assert again.position() == 42 and list(again.events("bob")) == bob
    again.wipe()
    assert again.position() == 0 and list(again.events("alice")) == []
    again.close()


def _moves(amounts: list[int]) -> list[Event]:
    """An account opened, then a deposit for each positive amount, a withdrawal for each
    negative one (``evolve`` folds them whatever the balance)."""
    moves: list[Event] = [Deposited(a) if a > 0 else Withdrawn(-a) for a in amounts]
    return [AccountOpened("EUR", 0), *moves]


def _all_waypoints(records: list[bytes]) -> list[Waypoint]:
    return list(waypoints(CODEC, records, ORIGIN, len(records)))


def _nearest(found: list[Waypoint], at_most: int) -> Waypoint:
    return max(
        (w for w in found if w.sequence <= at_most), key=lambda w: w.sequence, default=ORIGIN
    )


AMOUNTS = st.lists(st.integers(-1_000, 1_000).filter(bool), max_size=3 * WAYPOINT_EVERY + 20)


@settings(deadline=None)  # hundreds of events an example, on a shared machine
@given(AMOUNTS, st.data())
def test_a_page_from_the_nearest_waypoint_is_the_page_from_the_first_event(
    amounts: list[int], data: st.DataObject
) -> None:
    records = _records(events=_moves(amounts))
    after = data.draw(st.integers(0, len(records) + 2), label="after_version")
    limit = data.draw(st.integers(1, MAX_PAGE), label="limit")
    start = _nearest(_all_waypoints(records), after)
    assert after - start.sequence < WAYPOINT_EVERY  # the fold before the page is bounded
    from_start = history_page(CODEC, "alice", records, after, limit)
    from_waypoint = history_page(
        CODEC, "alice", records[start.sequence :], after, limit, start=start
    )
    assert from_waypoint == from_start
    # money: each entry's balance is the sum of the moves up to it
    assert [e.view.balance for e in from_start.entries] == [
        sum(amounts[: e.sequence - 1]) for e in from_start.entries
    ]


@settings(deadline=None)  # hundreds of events an example, on a shared machine
@given(AMOUNTS, st.data())
def test_a_state_from_the_nearest_waypoint_is_the_state_from_the_first_event(
    amounts: list[int], data: st.DataObject
) -> None:
    records = _records(events=_moves(amounts))
    version = data.draw(st.integers(1, len(records) + 2), label="version")
    start = _nearest(_all_waypoints(records), version - 1)
    from_waypoint = state_at(CODEC, "alice", records[start.sequence :], version, start=start)
    assert from_waypoint == state_at(CODEC, "alice", records, version)
    if version <= len(records):
        assert from_waypoint is not None and from_waypoint.view.balance == sum(
            amounts[: version - 1]
        )


@settings(deadline=None)  # hundreds of events an example, on a shared machine
@given(AMOUNTS)
def test_waypoints_are_the_states_at_each_multiple_and_fold_on_from_each_other(
    amounts: list[int],
) -> None:
    records = _records(events=_moves(amounts))
    found = _all_waypoints(records)
    assert [w.sequence for w in found] == list(
        range(WAYPOINT_EVERY, len(records) + 1, WAYPOINT_EVERY)
    )
    for w in found:
        assert w.state.balance == sum(amounts[: w.sequence - 1])
    # what the index does batch by batch: each batch folds on from the last waypoint before it
    if len(found) >= 2:
        second = list(waypoints(CODEC, records[found[0].sequence :], found[0], len(records)))
        assert second == found[1:]


def test_waypoints_stop_at_the_last_multiple_asked_for() -> None:
    records = _records(events=_moves([1] * (3 * WAYPOINT_EVERY)))
    found = list(waypoints(CODEC, records, ORIGIN, 2 * WAYPOINT_EVERY + 5))
    assert [w.sequence for w in found] == [WAYPOINT_EVERY, 2 * WAYPOINT_EVERY]
    assert list(waypoints(CODEC, records, found[0], WAYPOINT_EVERY)) == []


def test_a_fold_from_a_waypoint_checks_the_sequence_it_resumes_at() -> None:
    records = _records(events=_moves([5] * (WAYPOINT_EVERY + 10)))
    start = _all_waypoints(records)[0]
    with pytest.raises(CodecError, match=f"where {WAYPOINT_EVERY + 1} was expected"):
        history_page(CODEC, "alice", records[start.sequence + 1 :], start.sequence, 5, start=start)
    with pytest.raises(ValueError):  # a page cannot start after what it asks for
        history_page(CODEC, "alice", records, start.sequence - 1, 5, start=start)


def test_a_fold_past_its_deadline_raises_and_answers_nothing() -> None:
    records = _records(events=_moves([1] * 500))
    ticks = count()
    deadline = QueryDeadline(at=3.0, clock=lambda: float(next(ticks)))  # a second a look
    with pytest.raises(HistoryDeadlineError, match="past its deadline"):
        history_page(CODEC, "alice", records, 0, MAX_PAGE, deadline=deadline)
    with pytest.raises(HistoryDeadlineError):
        state_at(CODEC, "alice", records, 500, deadline=QueryDeadline(0.0, lambda: 1.0))
    in_time = QueryDeadline(at=1.0, clock=lambda: 0.0)
    assert len(history_page(CODEC, "alice", records, 0, 50, deadline=in_time).entries) == 50


def test_the_store_finds_the_waypoint_at_or_before_a_sequence(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h", CODEC.waypoints.fold)
    alice = _records(events=_moves([1] * 250))
    entries = {encode_history_key("alice", n): r for n, r in enumerate(alice, start=1)}
    for w in _all_waypoints(alice):
        entries[encode_waypoint_key("alice", w.sequence)] = CODEC.waypoints.encode(w.state)
    entries[encode_waypoint_key("alicf", 50)] = b"another aggregate's"
    store.install(entries, 251)
    assert store.waypoint("alice", 99) is None
    for at_most, sequence in ((100, 100), (199, 100), (200, 200), (10**6, 200), (2**70, 200)):
        found = store.waypoint("alice", at_most)
        assert found is not None and found[0] == sequence
        assert CODEC.waypoints.decode(found[1]).balance == sequence - 1
    assert store.waypoint("bob", 10**6) is None and store.waypoint("alic", 10**6) is None
    assert store.last("alice") == 251 and store.last("bob") == 0
    assert list(store.events("alice", after=248)) == alice[248:]
    assert list(store.events("alice", after=10, before=13)) == alice[10:12]
    assert store.event("alice", 7) == alice[6] and store.event("alice", 252) is None
    store.close()


def test_a_store_of_another_fold_is_wiped_when_it_opens(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h", CODEC.waypoints.fold)
    store.install({encode_history_key("alice", 1): _records()[0]}, 9)
    store.close()
    same = HistoryStore(tmp_path / "h", CODEC.waypoints.fold)
    assert same.position() == 9
    same.close()
    other = HistoryStore(tmp_path / "h", b"another evolve")
    assert other.position() == 0 and list(other.events("alice")) == []
    other.install({}, 3)
    other.close()
    again = HistoryStore(tmp_path / "h", b"another evolve")
    assert again.position() == 3  # its fold now
    again.close()


@settings(max_examples=40, deadline=None)  # each example opens a RocksDB
@given(st.lists(st.integers(1, 260), min_size=1, max_size=6))
def test_the_index_keeps_the_same_waypoints_however_the_events_come_in_batches(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int]
) -> None:
    store = HistoryStore(tmp_path_factory.mktemp("h") / "h", CODEC.waypoints.fold)
    records = _records(events=_moves([3, -1] * (sum(batches) // 2 + 1)))[: sum(batches)]
    sequence = 0
    for size in batches:  # what the tail does with each batch it consumes
        events = [(sequence + n, r) for n, r in enumerate(records[sequence : sequence + size], 1)]
        entries = {encode_history_key("alice", n): r for n, r in events}
        entries |= waypoint_entries(CODEC, store, "alice", events)
        sequence += size
        store.install(entries, sequence)
    expected = _all_waypoints(records)
    for at_most in range(len(records) + 1):
        assert fold_start(CODEC, store, "alice", at_most) == _nearest(expected, at_most)
    store.close()
