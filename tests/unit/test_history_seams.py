"""An account's history across a repartition's seams: each partition's index holds its own
stints of the account's sequences, and pages and points in time follow the seams from one
index to the next without a gap or a repeat (the indexes on RocksDB, as the actors keep them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.history import page_of, point_of, seam_entries, waypoint_entries
from actors.history_store import HistoryStore
from ledger import LEDGER, AccountOpened, Deposited, Withdrawn
from topology.codec.aggregate import Codec
from topology.codec.keys import encode_history_key
from topology.envelopes import Slot
from topology.history import Elsewhere, HistoryPage, QueryDeadline, Seam, holder
from topology.moves import Arrival, Departure, RecordKind, encode_marker

CODEC = Codec(LEDGER)
NEVER = QueryDeadline(float("inf"), lambda: 0.0)
# Alice's ten events: 1..5 on partition 0, a move to 1, 6..8 there, a move back to 0 with no
# event between two moves (8 again), then 9..10 on 0. Each event at 1,000 + 10·n ms.
EVENTS: list[Any] = [AccountOpened("EUR", 0), *[Deposited(n) for n in range(1, 8)], Withdrawn(3)]
EVENTS.append(Deposited(100))


def _event(n: int) -> bytes:
    return CODEC.events.encode(
        "alice", n, EVENTS[n - 1], command_id=f"c{n}", timestamp_ms=1_000 + 10 * n
    )


def _slot(version: int) -> Slot:
    state = None
    for event in EVENTS[:version]:
        state = LEDGER.evolve(state, event)
    return Slot(state, version)


class _Partition:
    """One partition's events log, indexed as the history actor indexes it."""

    def __init__(self, path: Path) -> None:
        self.store = HistoryStore(path, CODEC.waypoints.fold)
        self.offset = 0

    def events(self, *sequences: int) -> None:
        values = [(n, _event(n)) for n in sequences]
        entries = {encode_history_key("alice", n): v for n, v in values}
        entries |= waypoint_entries(CODEC, self.store, "alice", values)
        self.offset += len(values)
        self.store.install(entries, self.offset)

    def departs(self, sequence: int, to: int) -> None:
        marker = encode_marker(Departure("alice", to, f"m{self.offset}", sequence))
        self.store.install(
            seam_entries(CODEC, RecordKind.DEPARTED, marker, self.offset), self.offset + 1
        )
        self.offset += 1

    def arrives(self, sequence: int, source: int) -> None:
        _, snapshot = CODEC.snapshots.record("alice", _slot(sequence), 0)
        marker = encode_marker(Arrival("alice", source, f"m{self.offset}", sequence, snapshot))
        self.store.install(
            seam_entries(CODEC, RecordKind.ARRIVED, marker, self.offset), self.offset + 1
        )
        self.offset += 1


@pytest.fixture
def partitions(tmp_path: Path) -> list[_Partition]:
    p0, p1 = _Partition(tmp_path / "p0"), _Partition(tmp_path / "p1")
    p0.events(1, 2, 3, 4, 5)
    p0.departs(5, to=1)
    p1.arrives(5, source=0)
    p1.events(6, 7, 8)
    p1.departs(8, to=0)
    p0.arrives(8, source=1)
    p0.events(9, 10)
    return [p0, p1]


def _follow(partitions: list[_Partition], after: int, limit: int) -> HistoryPage[Any]:
    """A page as `Reads.history` joins it: from the owner (partition 0), across seams."""
    where, entries = 0, []
    while True:
        page = page_of(
            CODEC, partitions[where].store, "alice", after, limit - len(entries), deadline=NEVER
        )
        entries += page.entries
        if page.continue_on is None or len(entries) == limit or page.next_after is None:
            return HistoryPage(aggregate_id="alice", entries=entries, next_after=page.next_after)
        where, after = page.continue_on, page.next_after


def test_seams_say_which_partition_holds_each_event(partitions: list[_Partition]) -> None:
    p0, p1 = (p.store.seams("alice") for p in partitions)
    assert p0 == [Seam(5, False, 1), Seam(8, True, 1)]
    assert [holder(p0, n) for n in range(1, 11)] == [None] * 5 + [1, 1, 1] + [None] * 2
    assert [holder(p1, n) for n in range(1, 11)] == [0] * 5 + [None] * 3 + [0] * 2


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 10, 100])
def test_pages_join_across_the_seams_without_gap_or_repeat(
    partitions: list[_Partition], limit: int
) -> None:
    seen, balances, after = [], [], 0
    while True:
        page = _follow(partitions, after, limit)
        assert len(page.entries) <= limit
        seen += [e.sequence for e in page.entries]
        balances += [e.view.balance for e in page.entries]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == list(range(1, 11))
    assert balances == [_slot(n).state.balance for n in range(1, 11)]


def test_a_point_in_time_follows_the_seams(partitions: list[_Partition]) -> None:
    p0, p1 = (p.store for p in partitions)
    # By version: the owner sends a version of another stint where it was held.
    assert point_of(CODEC, p0, "alice", NEVER, version=7) == Elsewhere(1, 7)
    at7 = point_of(CODEC, p1, "alice", NEVER, version=7)
    assert (
        not isinstance(at7, Elsewhere)
        and at7 is not None
        and at7.view.balance == _slot(7).state.balance
    )
    at9 = point_of(CODEC, p0, "alice", NEVER, version=9)
    assert not isinstance(at9, Elsewhere) and at9 is not None and at9.view.version == 9
    # By time: each index searches its own stint, and sends an earlier time on.
    for n in range(1, 11):
        where, upto = 0, None
        for _ in range(4):
            found = point_of(
                CODEC, partitions[where].store, "alice", NEVER, at_ms=1_000 + 10 * n + 5, upto=upto
            )
            if not isinstance(found, Elsewhere):
                break
            where, upto = found.partition, found.upto
        assert found is not None and not isinstance(found, Elsewhere)
        assert found.version == n and found.view.balance == _slot(n).state.balance
    assert point_of(CODEC, p0, "alice", NEVER, at_ms=1_000) == Elsewhere(1, 8)
    assert point_of(CODEC, p1, "alice", NEVER, at_ms=1_000, upto=8) == Elsewhere(0, 5)
    assert point_of(CODEC, p0, "alice", NEVER, at_ms=1_000, upto=5) is None  # not open yet
