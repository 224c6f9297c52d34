"""The snapshot store: raw installs on restore, decoding on access, stale schemas refused."""

import pytest

from ledger import LEDGER, Deposit, OpenAccount, Withdraw
from topology.codec.aggregate import Codec
from topology.codec.snapshots import StaleSnapshotError
from topology.codec.wire import CodecError
from topology.envelopes import Slot, Snapshot
from topology.store import SnapshotStore

from .support import LEDGER_CODEC, NewerLedger, record, run

NEWER = LEDGER.state_schema_version + 1  # what NewerLedger writes


def committed_store() -> tuple[SnapshotStore, dict[str, Slot]]:
    first = run({}, [record(0, "a", OpenAccount("EUR"), "c-0"), record(1, "a", Deposit(9), "c-1")])
    store = SnapshotStore(LEDGER_CODEC)
    store.install((out.key, out.value) for out in first.snapshots)
    second = run(
        store, [record(2, "a", Withdraw(4), "c-2"), record(3, "b", OpenAccount("USD"), "c-3")]
    )
    store.install((out.key, out.value) for out in second.snapshots)
    return store, {**first.changed, **second.changed}


def test_installed_snapshots_read_back_as_the_committed_slots() -> None:
    store, expected = committed_store()
    assert len(store) == 2
    assert dict(store.items()) == expected
    assert store["a"].state.balance == 5  # type: ignore[union-attr]
    assert "b" in store and "c" not in store and 42 not in store
    assert store.get("c") is None
    with pytest.raises(KeyError):
        store["c"]


def test_a_tombstone_deletes() -> None:
    store, _ = committed_store()
    store.load(b"a", None)
    store.load(b"zzz", None)
    assert list(store) == ["b"]


def test_a_snapshot_record_needs_a_key() -> None:
    with pytest.raises(CodecError, match="key"):
        SnapshotStore(LEDGER_CODEC).load(None, b"x")


def test_a_snapshot_under_another_key_is_refused_on_access() -> None:
    store, _ = committed_store()
    first = run({}, [record(0, "a", OpenAccount("EUR"), "c-0")])
    store.load(b"b", first.snapshots[0].value)  # a's snapshot filed under b
    with pytest.raises(CodecError, match="under key"):
        store.get("b")


def test_a_stale_snapshot_is_refused_at_load() -> None:
    data = Codec(NewerLedger()).snapshots.encode(Snapshot(NEWER, "a", Slot(None, 0), 0))  # type: ignore[arg-type]
    with pytest.raises(StaleSnapshotError):
        SnapshotStore(LEDGER_CODEC).load(b"a", data)


def test_the_slot_index_is_built_on_first_ask_and_kept_through_installs_and_tombstones() -> None:
    store, _ = committed_store()
    slot_of = {b"a": 0, b"b": 1, b"c": 1}.__getitem__
    assert store.in_slots([0], slot_of) == ["a"]
    assert store.in_slots([0, 1], slot_of) == ["a", "b"]
    later = run(store, [record(4, "c", OpenAccount("EUR"), "c-4")])
    store.install((out.key, out.value) for out in later.snapshots)
    assert store.in_slots([1], slot_of) == ["b", "c"]
    store.install([(b"b", None), (b"b", None)])  # a tombstone, twice
    assert store.in_slots([1], slot_of) == ["c"]
    assert store.in_slots([2], slot_of) == []
