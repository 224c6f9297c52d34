"""A move through the actor's commit path, without a broker: the handoff's transaction
writes its parts to the target's internal partition first and its slot record before the
checkpoint, and once committed the partition's state, deadlines and slot record change;
a standby that follows the same records owns what the writer owns."""

from __future__ import annotations

from typing import Any

from actors.commit import BatchCommit, write_checkpoint
from actors.committed import Committed
from actors.messages import Counters, ServedBy
from actors.views import MemberViews
from ledger import Deposit, OpenAccount
from topology.aborts import AbortPolicy
from topology.codec.checkpoint import CHECKPOINT_KEY, encode_checkpoint
from topology.codec.keys import encode_key
from topology.envelopes import Checkpoint
from topology.follow import Batches
from topology.moves import (
    SLOT_RECORD_KEY,
    MoveSlots,
    RecordKind,
    SlotRecord,
    decode_slot_record,
    encode_move,
    encode_slot_record,
    kind_header,
)
from topology.routing import RoutingTable
from topology.settings import Settings
from topology.step.batch import process_batch
from topology.step.records import BatchResult, InRecord
from topology.store import SnapshotStore
from topology.topics import TopicKind

from .support import LEDGER_CODEC, NOW, SOURCE, Memory, record

TOPICS = {kind: f"t.{kind}" for kind in TopicKind}
TABLE = RoutingTable.initial(2, 8)


def in_slot(slot: int) -> str:
    n = 0
    while TABLE.slot_of(f"m{n}".encode()) != slot:
        n += 1
    return f"m{n}"


class _RecordingWriter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None, bytes | None]] = []

    def begin(self) -> None:
        self.calls.append(("begin", None, None))

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, *_: Any, **__: Any
    ) -> None:
        self.calls.append((topic, key, value))

    def commit(self) -> None:
        self.calls.append(("commit", None, None))


class _Views(MemberViews):
    served_by = ServedBy.WRITER

    def __init__(self, committed: Committed) -> None:
        self.settings = Settings(app_id="unit", bootstrap_servers="127.0.0.1:1", read_wait_ms=0)
        self.partition = 0
        self.committed = committed


def step(c: Committed, ids: Memory, records: list[InRecord]) -> tuple[BatchResult, Any]:
    now_ms = c.now_ms()
    result = process_batch(
        LEDGER_CODEC,
        c.states,
        records,
        partition=0,
        partitions=2,
        source_topic=SOURCE,
        events_offset=c.events_end,
        ids=ids,
        window_ms=86_400_000,
        now_ms=now_ms,
        seq=c.next_seq,
        positions=(c.next_offset, c.internal_offset),
        routing=c.routing,
        slots=c.slots(0),
    )
    return result, c.checkpoint(result, now_ms)


def test_a_handoff_commits_parts_first_and_its_slot_record_before_the_checkpoint() -> None:
    c = Committed(LEDGER_CODEC, 0, dict(TOPICS), SnapshotStore(LEDGER_CODEC), clock=lambda: NOW)
    c.routing = TABLE
    assert c.slots(0) == SlotRecord.initial(0, TABLE), "no record: its slots in the table"
    ids = Memory()
    moving, staying = in_slot(0), in_slot(2)
    opened = [
        record(0, moving, OpenAccount("EUR"), "o1"),
        record(1, moving, Deposit(5), "d1"),
        record(2, staying, OpenAccount("EUR"), "o2"),
    ]
    result, checkpoint = step(c, ids, opened)
    ids.update(result.remembered)
    c.installed(result, checkpoint, NOW)
    move = MoveSlots("m1", 1, (0,), 1)
    request = InRecord(0, b"m1", encode_move(move), [kind_header(RecordKind.MOVE)], True)
    result, checkpoint = step(c, ids, [request])
    writer = _RecordingWriter()
    batch = BatchCommit(
        Settings(app_id="unit", bootstrap_servers="127.0.0.1:1"),
        0,
        c,
        writer=writer,  # type: ignore[arg-type]
        ids=None,  # type: ignore[arg-type]
        counters=Counters(),
        metrics=None,  # type: ignore[arg-type]
        aborts=AbortPolicy(),
        rewind=lambda *_: None,
        wait=lambda _: None,
    )
    batch.transact(result, checkpoint)
    produced = writer.calls[1:-1]
    snapshots = [(k, v) for t, k, v in produced if t == TOPICS[TopicKind.SNAPSHOTS]]
    assert snapshots[0] == (encode_key(moving), None), "the tombstone"
    assert [k for k, _ in snapshots[1:]] == [SLOT_RECORD_KEY, CHECKPOINT_KEY]
    internal = [t for t, _, _ in produced if t == TOPICS[TopicKind.INTERNAL]]
    assert len(internal) == 1
    c.installed(result, checkpoint, NOW)
    assert set(c.states) == {staying}
    assert c.slot_record is not None and c.slot_record.gave((0,), 1)
    assert c.slots(0) == c.slot_record, "the record wins over the table from now on"
    # a read of the account handed off is sent to its new owner, the other answered here
    views = _Views(c)
    gone = views.read(moving)
    assert (gone.owner, gone.view, gone.reached) == (1, None, False)
    assert views.read(staying).owner is None and views.read(staying).view is not None
    assert [v.owner for v in views.read_batch([staying, moving])] == [None, 1]
    # a standby that reads the same snapshots owns what the writer owns
    follower = Committed(LEDGER_CODEC, 0, dict(TOPICS), SnapshotStore(LEDGER_CODEC))
    tail = Batches()
    done = None
    for key, value in snapshots:
        done = tail.feed(key, value) or done
    assert done is not None and done.slot_record == c.slot_record
    follower.followed(done.records, done.checkpoint, done.slot_record)
    assert follower.slot_record == c.slot_record and len(follower.states) == 0
    assert decode_slot_record(snapshots[1][1] or b"") == c.slot_record
    assert encode_checkpoint(done.checkpoint) == snapshots[-1][1]


def test_a_switch_to_a_new_generation_carries_the_slot_record_before_the_checkpoint() -> None:
    writer = _RecordingWriter()
    slots = SlotRecord.of(TABLE.assign([0, 2], 1, 1), [4, 6])
    checkpoint = Checkpoint(next_offset=5)
    write_checkpoint(writer, "t.snapshots.g2", 0, checkpoint, slot_record=slots)  # type: ignore[arg-type]
    assert writer.calls == [
        ("begin", None, None),
        ("t.snapshots.g2", SLOT_RECORD_KEY, encode_slot_record(slots)),
        ("t.snapshots.g2", CHECKPOINT_KEY, encode_checkpoint(checkpoint)),
        ("commit", None, None),
    ]
