"""What a restore reads back from the in-memory logs, for a worker (`SimPartition`) and a
standby alike, as the actor's restore reads Kafka: the snapshots to their end (the state and
the last checkpoint) and the id memory from its changelog (the partition's replies lanes,
in offset order; an id decided on two lanes keeps its later decision's entry).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventledger.sim.logs import Logs, Record
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.envelopes import Checkpoint
from topology.idempotency import latest_entries
from topology.moves import SLOT_RECORD_KEY, SlotRecord, decode_slot_record
from topology.step.records import UNREMEMBERED_KEY_PREFIX
from topology.store import SnapshotStore
from topology.topics import TopicKind

__all__ = ["ReadBack", "read_back", "remember"]


@dataclass(frozen=True)
class ReadBack:
    """What a restore reads back: the snapshots' state, last checkpoint and slot record
    (None: none), the id memory, and the offsets after the last record read (snapshots, and
    each replies lane)."""

    states: SnapshotStore
    checkpoint: Checkpoint
    ids: dict[bytes, bytes]
    snapshots_at: int
    replies_at: dict[int, int]
    slot_record: SlotRecord | None = None


def read_back(codec: Codec, logs: Logs, partition: int, reply_lanes: int) -> ReadBack:
    """Partition `partition`'s committed snapshots, last checkpoint and id memory."""
    states = SnapshotStore(codec)
    checkpoint = Checkpoint(0)
    slot_record = None
    snapshots_at = 0
    for record in logs.log(TopicKind.SNAPSHOTS, partition).read(0):
        if record.key == CHECKPOINT_KEY:
            checkpoint = decode_checkpoint(record.value)
        elif record.key == SLOT_RECORD_KEY:  # the slots the partition owns: not a snapshot
            slot_record = decode_slot_record(record.value or b"")
        else:
            states.load(record.key, record.value)
        snapshots_at = record.offset + 1
    ids: dict[bytes, bytes] = {}
    replies_at = {}
    for lane in range(reply_lanes):
        records = list(logs.log(TopicKind.REPLIES, partition * reply_lanes + lane).read(0))
        remember(ids, records)
        replies_at[lane] = records[-1].offset + 1 if records else 0
    return ReadBack(states, checkpoint, ids, snapshots_at, replies_at, slot_record)


def remember(ids: dict[bytes, bytes], records: Sequence[Record]) -> None:
    """Fold one replies partition's `records`, in offset order, into the id memory `ids`:
    what the actor's restore and a standby's tail install (the later decision of an id
    wins over another lane's)."""
    entries = {}
    for record in records:
        key = record.key or b""
        if key.startswith(UNREMEMBERED_KEY_PREFIX) or record.value is None:
            continue
        entries[key] = record.value
    ids.update(latest_entries(ids, entries))
