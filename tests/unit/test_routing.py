"""Slots and the routing table: the version-0 identity with Kafka's partitioner, the merge's
laws, the plan of moves (minimal, balanced, modular where it can be, deterministic), and the
batch step routing a leg by the table."""

from __future__ import annotations

import functools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import Deposit, OpenAccount, Transfer
from topology.codec.keys import encode_key
from topology.partitioner import partition_for
from topology.routing import (
    ACCOUNTS_PER_MOVE,
    MAX_SLOTS,
    SLOTS_PER_MOVE,
    Move,
    Router,
    RoutingTable,
    plan_moves,
    slot,
    slots_per_move_for,
)
from topology.settings import DAY_MS
from topology.step.batch import process_batch
from topology.topics import TopicKind

from .support import LEDGER_CODEC, NOW, SOURCE, Memory, record

keys = st.binary(max_size=40)


@functools.cache
def initial(partitions: int) -> RoutingTable:
    return RoutingTable.initial(partitions, 240 * partitions)


def test_a_slot_is_the_masked_murmur2_modulo_the_slots() -> None:
    # librdkafka's rdmurmur2.c test: murmur2(b"kafka") & 0x7fffffff == 1348980580
    assert slot(b"kafka", 960) == 1348980580 % 960 == 100
    assert initial(4).slot_of(b"kafka") == 100
    with pytest.raises(ValueError, match="slots"):
        slot(b"kafka", 0)


@given(keys, st.integers(1, 64))
def test_version_0_owns_every_key_where_kafka_puts_it(key: bytes, partitions: int) -> None:
    table = initial(partitions)
    assert table.version == 0 and table.modulus == partitions
    assert table.owner_of(key) == partition_for(key, partitions)
    assert Router(partitions, table).partition_of(key) == partition_for(key, partitions)


def test_version_0_needs_slots_a_multiple_of_the_partitions() -> None:
    with pytest.raises(ValueError, match="multiple"):
        RoutingTable.initial(3, 10)
    with pytest.raises(ValueError, match="slots"):
        RoutingTable.initial(1, MAX_SLOTS + 1)


@given(keys, st.integers(1, 300))
def test_without_a_table_the_router_is_kafkas_partitioner(key: bytes, partitions: int) -> None:
    assert Router(partitions).partition_of(key) == partition_for(key, partitions)


def test_with_a_table_the_router_follows_the_table() -> None:
    key = b"kafka"
    moved = initial(4).assign([slot(key, 960)], 7, version=1)
    assert partition_for(key, 4) != 7
    assert Router(8, moved).partition_of(key) == moved.owner_of(key) == 7
    assert Router(8).partition_of(key) == partition_for(key, 8)


@pytest.mark.parametrize(
    ("owners", "moved_at", "message"),
    [
        ((), (), "slots"),
        ((0, 1), (0,), "moved_at"),
        ((0, 2), (0, 0), "owner"),
        ((0, -1), (0, 0), "owner"),
        ((0, 1), (0, -1), "negative"),
    ],
)
def test_a_malformed_table_is_refused(
    owners: tuple[int, ...], moved_at: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RoutingTable(owners, moved_at)


def test_a_slot_only_moves_to_a_higher_version() -> None:
    table = initial(2).assign([3, 5], 0, version=4)
    assert (table.owners[3], table.moved_at[3], table.version) == (0, 4, 4)
    with pytest.raises(ValueError, match="slot 5"):
        table.assign([5], 1, version=4)


SIZE = 12


def tables() -> st.SearchStrategy[RoutingTable]:
    entries = st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=SIZE, max_size=SIZE
    )
    return entries.map(lambda e: RoutingTable(tuple(o for o, _ in e), tuple(v for _, v in e)))


@given(tables(), tables(), tables())
def test_merge_is_commutative_associative_and_idempotent(
    a: RoutingTable, b: RoutingTable, c: RoutingTable
) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    merged = a.merge(b)
    assert merged.moved_at == tuple(map(max, a.moved_at, b.moved_at))
    for s in range(SIZE):
        if a.moved_at[s] > b.moved_at[s]:
            assert merged.owners[s] == a.owners[s], "the later move wins"


def test_a_stale_table_merged_in_changes_nothing() -> None:
    old = initial(2)
    new = old.assign([0, 2], 1, version=1).assign([4], 1, version=2)
    assert new.merge(old) == old.merge(new) == new
    with pytest.raises(ValueError, match="slots"):
        new.merge(initial(3))


def applied(table: RoutingTable, moves: tuple[Move, ...]) -> RoutingTable:
    """The table after every move, each at its own fresh version (as the driver gives)."""
    for move in moves:
        assert [table.owners[s] for s in move.slots] == [move.source] * len(move.slots)
        table = table.assign(move.slots, move.target, table.version + 1)
    return table


def fewest_moved(table: RoutingTable, partitions: int) -> int:
    """S minus the most slots any balanced layout on `partitions` can leave in place: each
    partition below `partitions` keeps at most ⌊S/M⌋, and S % M of them one more."""
    base, extra = divmod(table.slots, partitions)
    counts = Counter(table.owners)
    kept = sum(min(counts[p], base) for p in range(partitions))
    kept += min(extra, sum(1 for p in range(partitions) if counts[p] > base))
    return table.slots - kept


@st.composite
def plans(draw: st.DrawFn) -> tuple[RoutingTable, int, int]:
    size = draw(st.integers(1, 120))
    owners = draw(st.lists(st.integers(0, min(size, 9) - 1), min_size=size, max_size=size))
    table = RoutingTable(tuple(owners), (0,) * size)
    return table, draw(st.integers(1, min(size, 12))), draw(st.integers(1, 8))


@given(plans())
def test_a_plan_balances_within_one_and_moves_the_fewest_slots(
    plan: tuple[RoutingTable, int, int],
) -> None:
    table, partitions, per_move = plan
    moves = plan_moves(table, partitions, slots_per_move=per_move)
    after = applied(table, moves)
    counts = after.counts(partitions)
    assert max(counts[:partitions]) - min(counts[:partitions]) <= 1
    assert not any(counts[partitions:]), "nothing stays beyond the partitions"
    moved = [s for m in moves for s in m.slots]
    assert len(moved) == len(set(moved)) == fewest_moved(table, partitions)
    assert all(0 < len(m.slots) <= per_move and m.source != m.target for m in moves)
    assert all(list(m.slots) == sorted(m.slots) for m in moves)
    assert list(moves) == sorted(moves, key=lambda m: (m.source, m.target, m.slots))
    copy = RoutingTable(tuple(list(table.owners)), tuple(list(table.moved_at)))
    assert plan_moves(copy, partitions, slots_per_move=per_move) == moves


def test_growing_a_modular_table_by_a_factor_stays_modular() -> None:
    table = initial(4)
    moves = plan_moves(table, 8)
    after = applied(table, moves)
    assert after.owners == tuple(s % 8 for s in range(960)) and after.modulus == 8
    assert sum(len(m.slots) for m in moves) == 480
    assert {(m.source, m.target) for m in moves} == {(p, p + 4) for p in range(4)}
    assert all(len(m.slots) <= 5 for m in moves) and len(moves) == 96


def test_growing_8_to_12_moves_a_third_of_the_slots_and_leaves_kafkas_layout() -> None:
    eight = applied(initial(4), plan_moves(initial(4), 8))
    for table in (eight, initial(8)):
        moves = plan_moves(table, 12)
        moved = sum(len(m.slots) for m in moves)
        assert moved * 3 == table.slots
        after = applied(table, moves)
        assert after.counts(12) == [table.slots // 12] * 12
        assert after.modulus is None


def test_a_plan_gives_each_sources_lowest_slots_in_moves_of_the_size_asked() -> None:
    table = RoutingTable.initial(2, 24)
    assert plan_moves(table, 3, slots_per_move=3) == (
        Move(0, 2, (0, 2, 4)),
        Move(0, 2, (6,)),
        Move(1, 2, (1, 3, 5)),
        Move(1, 2, (7,)),
    )
    assert plan_moves(table, 2) == ()
    # 12 slots on 5: the two fullest keep 3; the given slots, ascending, fill 2, 3, 4 in turn
    assert plan_moves(RoutingTable.initial(2, 12), 5) == (
        Move(0, 2, (0,)),
        Move(0, 3, (2,)),
        Move(0, 4, (4,)),
        Move(1, 2, (1,)),
        Move(1, 3, (3,)),
        Move(1, 4, (5,)),
    )


def test_shrinking_empties_the_partitions_beyond_the_new_count() -> None:
    table = initial(4)
    moves = plan_moves(table, 3)
    assert {m.source for m in moves} == {3}
    assert applied(table, moves).counts(4) == [320, 320, 320, 0]


def test_a_plan_needs_between_one_and_s_partitions_and_a_positive_move_size() -> None:
    table = RoutingTable.initial(2, 4)
    for partitions in (0, 5):
        with pytest.raises(ValueError, match="partitions"):
            plan_moves(table, partitions)
    with pytest.raises(ValueError, match="slots_per_move"):
        plan_moves(table, 2, slots_per_move=0)


def test_the_batch_step_sends_a_leg_where_the_table_says() -> None:
    source = "a"
    target = next(f"b{n}" for n in range(100) if partition_for(f"b{n}".encode(), 2) == 0)
    assert partition_for(source.encode(), 2) == 0
    records = [
        record(0, source, OpenAccount("EUR"), "c0"),
        record(1, source, Deposit(100), "c1"),
        record(2, source, Transfer(target, 30), "c2"),
    ]
    moved = RoutingTable.initial(2, 480).assign([slot(encode_key(target), 480)], 1, version=1)
    assert moved.owner_of(encode_key(source)) == 0, "only the target's slot moved"

    def legs(table: RoutingTable | None) -> list[tuple[int, bytes | None]]:
        result = process_batch(
            LEDGER_CODEC,
            {},
            records,
            partition=0,
            partitions=2,
            source_topic=SOURCE,
            events_offset=0,
            ids=Memory(),
            window_ms=DAY_MS,
            now_ms=NOW,
            seq=1,
            routing=table,
        )
        assert all(r.kind is TopicKind.INTERNAL for r in result.internal)
        return [(r.partition, r.key) for r in result.internal]

    assert legs(None) == [], "without a table the target is on partition 0: no leg leaves"
    assert legs(RoutingTable.initial(2, 480)) == [], "version 0 is the same layout"
    assert legs(moved) == [(1, encode_key(target))]


def test_slots_per_move_keep_a_move_within_its_aggregates() -> None:
    assert slots_per_move_for(0, 960) == SLOTS_PER_MOVE
    assert slots_per_move_for(250_000, 960) == SLOTS_PER_MOVE  # 260 a slot
    assert slots_per_move_for(1_000_000, 960) == 2  # 1,042 a slot: 2,084 a move
    assert slots_per_move_for(10_000_000, 960) == 1  # a slot is the least a move takes
    for held in (0, 1_000, 600_000, 1_000_000, 3_000_000):
        per_move = slots_per_move_for(held, 960)
        assert per_move == 1 or per_move * held / 960 <= ACCOUNTS_PER_MOVE
    with pytest.raises(ValueError, match="slots"):
        slots_per_move_for(10, 0)
