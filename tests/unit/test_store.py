"""The snapshot store: raw installs on restore, decoding on access, stale schemas refused,
and its slot index, built in bounded steps while keys come and go."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _snapshot(key: bytes) -> bytes:
    """A current-schema snapshot record of aggregate `key` (the index reads only keys)."""
    return LEDGER_CODEC.snapshots.encode(
        Snapshot(LEDGER.state_schema_version, key.decode(), Slot(None, 0), 0)
    )


def _slot3(key: bytes) -> int:
    return key[-1] % 3


class Counted:
    """A slot function that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, key: bytes) -> int:
        self.calls += 1
        return _slot3(key)


def test_the_build_hashes_at_most_its_limit_per_step_and_none_once_complete() -> None:
    store = SnapshotStore(LEDGER_CODEC)
    store.install((k, _snapshot(k)) for k in (b"k%d" % i for i in range(5)))
    slot_of = Counted()
    assert [store.index_step(slot_of, 2) for _ in range(3)] == [False, False, True]
    assert slot_of.calls == 5
    assert store.in_slots([0, 1, 2], slot_of) == [f"k{i}" for i in range(5)]
    assert slot_of.calls == 5  # a handoff after the build hashes nothing
    store.install([(b"k9", _snapshot(b"k9")), (b"k0", None)])  # each costs its one hash
    assert store.in_slots([0], slot_of) == ["k3", "k9"] and slot_of.calls == 7


def test_a_handoff_in_the_middle_of_the_build_finishes_it() -> None:
    store = SnapshotStore(LEDGER_CODEC)
    store.install((k, _snapshot(k)) for k in (b"k%d" % i for i in range(7)))
    assert not store.index_step(_slot3, 3)
    store.install([(b"k8", _snapshot(b"k8")), (b"k1", None), (b"k6", None)])
    assert store.in_slots([0, 2], _slot3) == ["k0", "k2", "k3", "k5", "k8"]
    assert store.index_step(_slot3, 1)


_KEYS = st.sampled_from([b"k%d" % i for i in range(12)])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _KEYS),
        st.tuples(st.just("delete"), _KEYS),
        st.tuples(st.just("step"), st.integers(0, 4)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(st.sets(_KEYS), _OPS, st.integers(0, 40))
def test_an_incremental_build_under_installs_and_deletes_equals_a_full_one(
    held: set[bytes], ops: list[tuple[str, object]], ask_at: int
) -> None:
    """Keys held before the build, then loads, tombstones and bounded steps interleaved;
    at `ask_at` a handoff asks mid-way (the fallback); every slot's keys are those held."""
    store = SnapshotStore(LEDGER_CODEC)
    store.install((k, _snapshot(k)) for k in held)
    truth = set(held)
    for n, (op, arg) in enumerate(ops):
        if op == "put":
            assert isinstance(arg, bytes)
            store.load(arg, _snapshot(arg))
            truth.add(arg)
        elif op == "delete":
            assert isinstance(arg, bytes)
            store.load(arg, None)
            truth.discard(arg)
        else:
            assert isinstance(arg, int)
            store.index_step(_slot3, arg)
        if n == ask_at:
            assert store.in_slots([1], _slot3) == sorted(
                k.decode() for k in truth if _slot3(k) == 1
            )
    while not store.index_step(_slot3, 1):
        pass
    for s in range(3):
        assert store.in_slots([s], _slot3) == sorted(k.decode() for k in truth if _slot3(k) == s)
