"""The id memory's local store (RocksDB, no Kafka): batched lookups, positions installed
atomically with the ids, and which checkpoint marks it does not reach yet."""

import os
from pathlib import Path

from actors.idstore import IdStore
from topology.codec.keys import encode_id_key, encode_internal_id_key
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
