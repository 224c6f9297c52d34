"""A member's slot indexes, built between batches (`actors.slotindex`): in bounded steps,
by the table the member holds, not at all without one."""

from pathlib import Path

from actors.committed import Committed
from actors.idstore import IdStore
from actors.routes import Routes
from actors.slotindex import CHUNK, build, index_slots
from ledger import LEDGER
from topology.codec.keys import encode_id_key
from topology.envelopes import Slot, Snapshot
from topology.routing import RoutingTable
from topology.store import SnapshotStore

from .support import LEDGER_CODEC

TABLE = RoutingTable.initial(2, 40)


def _state(accounts: int) -> SnapshotStore:
    store = SnapshotStore(LEDGER_CODEC)
    for i in range(accounts):
        snapshot = Snapshot(LEDGER.state_schema_version, f"acc-{i}", Slot(None, 0), 0)
        store.load(f"acc-{i}".encode(), LEDGER_CODEC.snapshots.encode(snapshot))
    return store


def _by_slot(keys: list[str]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for key in sorted(keys):
        found.setdefault(TABLE.slot_of(key.encode()), []).append(key)
    return found


def test_each_step_without_time_left_does_one_chunk_state_first_then_ids(tmp_path: Path) -> None:
    state = _state(3 * CHUNK + 1)
    ids = IdStore(tmp_path / "ids", ttl_seconds=3600)
    ids.install({encode_id_key(f"acc-{i}", "c"): b"r" for i in range(0, 3 * CHUNK, 7)}, {0: 1})
    steps = [build([state, ids], TABLE, seconds=0.0) for _ in range(5)]
    assert steps == [False, False, False, True, True]  # the ids' build: one chunk, done
    held = _by_slot([f"acc-{i}" for i in range(3 * CHUNK + 1)])
    assert {s: state.in_slots([s], TABLE.slot_of) for s in held} == held
    remembered = _by_slot([f"acc-{i}" for i in range(0, 3 * CHUNK, 7)])
    for s, accounts in remembered.items():
        found = ids.entries_in(frozenset({s}), TABLE.slot_of)
        assert [k for k, _ in found] == sorted(encode_id_key(a, "c") for a in accounts)
    ids.close()


def test_a_member_indexes_by_its_table_and_not_without_one(tmp_path: Path) -> None:
    committed = Committed(LEDGER_CODEC, 0, {}, _state(10))
    ids = IdStore(tmp_path / "ids", ttl_seconds=3600)
    assert not index_slots(committed, ids, Routes(2))  # no slots: nothing to index by
    assert not committed.states.index_step(lambda key: 0, 0)  # that began the build: unbuilt
    committed = Committed(LEDGER_CODEC, 0, {}, _state(10))
    assert index_slots(committed, ids, Routes(2, TABLE))
    held = _by_slot([f"acc-{i}" for i in range(10)])
    assert {s: committed.states.in_slots([s], TABLE.slot_of) for s in held} == held
    committed = Committed(LEDGER_CODEC, 0, {}, _state(10))
    committed.routing = TABLE  # a standby without the member's routes: the restored table
    assert index_slots(committed, None, None)
    ids.close()
