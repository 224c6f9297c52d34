"""The history of an aggregate, folded from its own events: pages, points in time, the index
keys and the local store that holds them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.history import HistoryStore
from ledger import LEDGER, AccountClosed, AccountOpened, Deposited, Withdrawn
from topology.codec.aggregate import Codec
from topology.codec.keys import encode_history_key, history_prefix
from topology.codec.wire import CodecError
from topology.history import history_page, state_at

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


def test_state_at_a_time_is_the_last_event_at_or_before_it() -> None:
    records = _records()
    assert state_at(CODEC, "alice", records, at_ms=1_005) is None  # before it was opened
    at = state_at(CODEC, "alice", records, at_ms=1_035)
    assert at is not None and at.version == 3 and at.view.balance == 70
    assert at.timestamp_ms == 1_030
    last = state_at(CODEC, "alice", records, at_ms=10**13)
    assert last is not None and last.version == 5 and last.view.balance == 0


def test_state_at_a_version() -> None:
    records = _records(events=[*EVENTS, AccountClosed()])
    at = state_at(CODEC, "alice", records, version=2)
    assert at is not None and at.view.balance == 100 and at.view.status == "open"
    closed = state_at(CODEC, "alice", records, version=6)
    assert closed is not None and closed.view.status == "closed"
    assert state_at(CODEC, "alice", records, version=7) is None
    with pytest.raises(ValueError):
        state_at(CODEC, "alice", records, version=1, at_ms=1)


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


def test_the_store_keeps_each_aggregates_events_apart_and_its_position(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h")
    alice, bob = _records("alice"), _records("bob", EVENTS[:2])
    entries = {encode_history_key("alice", n): r for n, r in enumerate(alice, start=1)}
    entries |= {encode_history_key("bob", n): r for n, r in enumerate(bob, start=1)}
    store.install(entries, 42)
    assert list(store.events("alice")) == alice
    assert list(store.events("bob")) == bob
    assert list(store.events("carol")) == []
    store.close()
    again = HistoryStore(tmp_path / "h")
    assert again.position() == 42 and list(again.events("bob")) == bob
    again.wipe()
    assert again.position() == 0 and list(again.events("alice")) == []
    again.close()
