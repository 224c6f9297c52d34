"""The id memory's local store (RocksDB, no Kafka): batched lookups, positions installed
atomically with the ids, which checkpoint marks it does not reach yet, and its slot index,
built in bounded steps while ids are installed."""

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.idstore import IdStore
from topology.codec.keys import encode_id_key, encode_internal_id_key, id_key_aggregate
from topology.idempotency import replies_retention_ms
from topology.settings import Settings


def store(tmp_path: Path) -> IdStore:
    return IdStore(tmp_path / "ids", ttl_seconds=3600)


def test_lookup_is_batched_and_misses_are_none(tmp_path: Path) -> None:
    ids = store(tmp_path)
    ids.install({b"k1": b"r1", b"k2": b"r2"}, {0: 10})
    assert ids.lookup([b"k2", b"nope", b"k1"]) == [b"r2", None, b"r1"]
    assert ids.lookup([]) == []
    assert b"k1" in ids and b"nope" not in ids
    ids.close()


def test_positions_merge_and_survive_a_reopen(tmp_path: Path) -> None:
    ids = store(tmp_path)
    ids.install({b"a": b"1"}, {0: 5, 1: 7})
    ids.install({b"b": b"2"}, {1: 9})
    assert ids.positions() == {0: 5, 1: 9}
    ids.close()
    again = store(tmp_path)
    assert again.positions() == {0: 5, 1: 9}
    assert again.lookup([b"a", b"b"]) == [b"1", b"2"]
    again.close()


def test_lacks_names_the_partitions_whose_last_remembered_id_is_missing(tmp_path: Path) -> None:
    settings = Settings(app_id="unit", bootstrap_servers="127.0.0.1:1")
    now = 10_000_000
    past = now - replies_retention_ms(settings.idempotency_window_ms) - 1
    ids = store(tmp_path)
    ids.install({b"seen": b"r"}, {})
    marks = {0: (b"seen", now), 1: (b"missing", now), 2: (b"missing-but-old", past)}
    assert ids.lacks(settings, marks, now) == [1]  # 2 is past the window: not waited for
    ids.install({b"missing": b"r"}, {})
    assert ids.lacks(settings, marks, now) == []
    ids.close()


def test_wipe_forgets_ids_and_positions(tmp_path: Path) -> None:
    ids = store(tmp_path)
    ids.install({b"a": b"1"}, {0: 3})
    ids.wipe()
    assert ids.positions() == {} and b"a" not in ids
    ids.close()


def test_reopening_in_one_process_and_compacting_forgets_nothing(tmp_path: Path) -> None:
    """An actor re-creates its clients in the same process after a fatal producer error, so
    its store is reopened there. rocksdict once re-applied the TTL filter of the saved
    options on every such reopen, nesting it: compaction then read reply bytes as expiry
    times and dropped about 40 % of the remembered ids (random replies, as real ones are)."""
    remembered: dict[bytes, bytes] = {}
    for reopen in range(4):
        ids = store(tmp_path)
        batch = {f"{reopen}-{i}".encode(): os.urandom(40) for i in range(500)}
        ids.install(batch, {0: reopen})
        remembered.update(batch)
        ids.close()
    ids = store(tmp_path)
    ids.compact()
    assert ids.lookup(list(remembered)) == list(remembered.values())
    ids.close()


def _slot(key: bytes) -> int:
    """A slot function for the tests: the aggregate's first letter."""
    return key[0] if key else 0


def test_entries_in_finds_every_id_of_the_slots_and_no_other(tmp_path: Path) -> None:
    """Both key shapes, of many aggregates (the index's skip scan seeks past each); an
    aggregate never held in state is remembered like any other (its slot moves it)."""
    ids = store(tmp_path)
    wanted = {
        encode_id_key("a", "c1"): b"1",
        encode_id_key("a", "c2"): b"2",
        encode_internal_id_key("a", "leg"): b"3",
        encode_id_key("ab", "c1"): b"4",
        **{encode_id_key(f"a{i}", f"c{j}"): b"x" for i in range(20) for j in range(3)},
    }
    others = {encode_id_key("b", "c1"): b"5", encode_id_key("", "a"): b"6", b"\x92x": b"7"}
    ids.install({**wanted, **others}, {0: 1})
    assert ids.entries_in(frozenset({ord("a")}), _slot) == sorted(wanted.items())
    assert ids.entries_in(frozenset({ord("z")}), _slot) == []
    assert ids.entries_in(frozenset(), _slot) == []


def test_entries_in_keeps_its_index_through_installs_and_a_wipe(tmp_path: Path) -> None:
    ids = store(tmp_path)
    ids.install({encode_id_key("a", "c1"): b"1"}, {0: 1})
    slots = frozenset({ord("a")})
    assert ids.entries_in(slots, _slot) == [(encode_id_key("a", "c1"), b"1")]
    later = {encode_id_key("a2", "c1"): b"2", encode_internal_id_key("a", "leg"): b"3"}
    ids.install(later, {0: 2})  # after the index was built: install keeps it
    assert ids.entries_in(slots, _slot) == sorted(
        [(encode_id_key("a", "c1"), b"1"), *later.items()]
    )
    ids.wipe()
    ids.install({encode_id_key("a3", "c1"): b"4"}, {0: 3})
    assert ids.entries_in(slots, _slot) == [(encode_id_key("a3", "c1"), b"4")]
    ids.close()


class Counted:
    """`_slot`, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, key: bytes) -> int:
        self.calls += 1
        return _slot(key)


def test_the_build_steps_once_per_aggregate_and_shape_not_per_id(tmp_path: Path) -> None:
    ids = store(tmp_path)
    many = {encode_id_key(f"a{i}", f"c{j}"): b"x" for i in range(4) for j in range(5)}
    ids.install({**many, encode_internal_id_key("a0", "leg"): b"y"}, {0: 1})
    slot_of = Counted()
    # 4 aggregates of the 2-element shape, then a0's 3-element one (hashed once already)
    assert [ids.index_step(slot_of, 1) for _ in range(5)] == [False] * 4 + [True]
    assert slot_of.calls == 4
    assert len(ids.entries_in(frozenset({ord("a")}), slot_of)) == 21
    assert slot_of.calls == 4  # a handoff after the build hashes nothing
    ids.close()


def test_a_handoff_in_the_middle_of_the_build_finishes_it_and_a_wipe_ends_it(
    tmp_path: Path,
) -> None:
    ids = store(tmp_path)
    ids.install({encode_id_key(f"a{i}", "c"): b"1" for i in range(3)}, {0: 1})
    assert not ids.index_step(_slot, 1)
    later = {encode_id_key("a1", "d"): b"2", encode_id_key("ab", "c"): b"3", b"\x00other": b"4"}
    ids.install(later, {0: 2})  # after the build began: install indexes them
    expected = {**{encode_id_key(f"a{i}", "c"): b"1" for i in range(3)}, **later}
    del expected[b"\x00other"]
    assert ids.entries_in(frozenset({ord("a")}), _slot) == sorted(expected.items())
    ids.install({encode_id_key(f"b{i}", "c"): b"5" for i in range(3)}, {})
    ids.wipe()  # with a build under way: it ends with the database it read
    assert ids.index_step(_slot, 0)  # a new build, of an empty store: complete at once
    ids.install({encode_id_key("b", "c"): b"6"}, {})
    assert ids.entries_in(frozenset({ord("b")}), _slot) == [(encode_id_key("b", "c"), b"6")]
    ids.close()


_IDS = st.tuples(
    st.sampled_from(["a", "ab", "a1", "b", "ba", "bé", "c", ""]),
    st.sampled_from(["c1", "c2", "leg"]),
    st.booleans(),
)
_ID_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("install"), st.lists(_IDS, max_size=4)),
        st.tuples(st.just("step"), st.integers(0, 3)),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)  # each example opens a RocksDB
@given(st.lists(_IDS, max_size=12), _ID_OPS, st.integers(0, 20))
def test_an_incremental_build_under_installs_equals_a_full_one(
    tmp_path_factory: pytest.TempPathFactory,
    held: list[tuple[str, str, bool]],
    ops: list[tuple[str, object]],
    ask_at: int,
) -> None:
    """Ids held before the build (both key shapes), then installs and bounded steps
    interleaved; at `ask_at` a handoff asks mid-way (the fallback); each slot's entries
    are every entry of its aggregates."""

    def entries(ids: list[tuple[str, str, bool]], value: bytes) -> dict[bytes, bytes]:
        encode = {False: encode_id_key, True: encode_internal_id_key}
        return {encode[internal](a, c): value for a, c, internal in ids}

    def expected(slot: int) -> list[tuple[bytes, bytes]]:
        return sorted(
            (k, v) for k, v in truth.items() if _slot(id_key_aggregate(k).encode()) == slot
        )

    memory = IdStore(tmp_path_factory.mktemp("ids") / "ids", ttl_seconds=3600)
    truth = entries(held, b"0")
    memory.install(dict(truth), {0: 1})
    for n, (op, arg) in enumerate(ops):
        if op == "install":
            assert isinstance(arg, list)
            batch = entries(arg, b"%d" % n)
            memory.install(batch, {0: n + 2})
            truth.update(batch)
        else:
            assert isinstance(arg, int)
            memory.index_step(_slot, arg)
        if n == ask_at:
            assert memory.entries_in(frozenset({ord("a")}), _slot) == expected(ord("a"))
    while not memory.index_step(_slot, 1):
        pass
    for slot in (0, ord("a"), ord("b"), ord("c")):
        assert memory.entries_in(frozenset({slot}), _slot) == expected(slot)
    memory.close()
