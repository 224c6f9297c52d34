"""Restore, the executor: read a snapshots partition to its end (read_committed) into memory.

It only seeks and consumes; what a record means is decided by ``topology`` (the store keeps
snapshot bytes as they come, the checkpoint record says where commands resume). Snapshots of
another state schema are not loaded: the scan goes on only to find the checkpoint, and the
caller folds the events instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from actors.kafka import consumer_config
from actors.memory import release_freed_memory
from actors.scan import scan_partition
from actors.watermarks import watermarks
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.codec.keys import TOUCH_KEY
from topology.codec.snapshots import StaleSnapshotError
from topology.envelopes import Checkpoint, Slot
from topology.moves import SLOT_RECORD_KEY, SlotRecord, decode_slot_record
from topology.names import Names
from topology.settings import Settings
from topology.store import SnapshotStore

__all__ = ["Restored", "restore_or_fold", "restore_partition"]

log = logging.getLogger(__name__)

# Fetch big and keep a deep local queue: restore is bound by records per second, not bytes.
_RESTORE_CONSUMER = {
    "enable.partition.eof": True,
    "fetch.wait.max.ms": 100,
    "max.partition.fetch.bytes": 64 * 1024 * 1024,
    "fetch.max.bytes": 128 * 1024 * 1024,
    "queued.max.messages.kbytes": 2_097_151,
    "queued.min.messages": 1_000_000,
}


@dataclass
class Restored:
    """What a snapshots partition held: the store, the checkpoint (None: no batch was ever
    committed to this generation), the records read, whether stale snapshots were met, the
    events partition's end offset, the seconds it took, and where a reader goes on from
    (``after``: the offset after the last record read; ``OFFSET_BEGINNING`` when none)."""

    store: SnapshotStore
    checkpoint: Checkpoint | None
    records: int
    stale: bool
    events_end: int
    seconds: float
    folded: bool = False  # the store was folded from the events (the snapshots were stale)
    after: int = OFFSET_BEGINNING
    slot_record: SlotRecord | None = None  # the partition's slot record (None: none)


def restore_partition(
    settings: Settings,
    codec: Codec,
    *,
    snapshots: TopicPartition,
    events: TopicPartition,
) -> Restored:
    """Read ``snapshots`` from its start to its end (partition EOF) into a store."""
    started = time.monotonic()
    consumer = Consumer(
        consumer_config(settings, group_id=Names.of(settings).group("restore"), **_RESTORE_CONSUMER)
    )
    store = SnapshotStore(codec)
    load = store.load
    checkpoint: Checkpoint | None = None
    slot_record: SlotRecord | None = None
    records = 0
    stale = False
    after = OFFSET_BEGINNING
    try:
        for msg in scan_partition(consumer, snapshots, wait=0.05):
            after = msg.offset() + 1
            key = msg.key()
            if key == CHECKPOINT_KEY:
                checkpoint = decode_checkpoint(msg.value())
                continue
            if key == TOUCH_KEY:  # a starting partition's touch: not a snapshot
                continue
            if key == SLOT_RECORD_KEY:  # the slots the partition owns: not a snapshot
                slot_record = decode_slot_record(msg.value())
                continue
            records += 1
            if stale:
                continue
            try:
                load(key, msg.value())
            except StaleSnapshotError as e:
                log.warning("%s[%d]: %s", snapshots.topic, snapshots.partition, e)
                stale = True
        _, events_end = watermarks(consumer, events)
    finally:
        consumer.close()
    release_freed_memory()
    seconds = time.monotonic() - started
    return Restored(
        store, checkpoint, records, stale, events_end, seconds, after=after, slot_record=slot_record
    )


def restore_or_fold(
    settings: Settings,
    codec: Codec,
    *,
    snapshots: TopicPartition,
    events: TopicPartition,
) -> Restored:
    """``restore_partition``; when it met snapshots of another state schema, the store is
    instead folded from ``events`` from offset 0 (the coordinator then rebuilds a clean
    generation). Snapshots of another schema are never loaded."""
    restored = restore_partition(settings, codec, snapshots=snapshots, events=events)
    if not restored.stale:
        return restored
    from actors.replay import replay_partition

    log.warning("%s[%d]: stale snapshots; folding the events", events.topic, events.partition)
    slots: dict[str, Slot] = {}
    applied, position = replay_partition(settings, codec, events.partition, slots)
    store = SnapshotStore(codec)
    for aggregate_id, slot in slots.items():
        store.load(*codec.snapshots.record(aggregate_id, slot, position))
    log.info(
        "%s[%d]: folded %d events into %d aggregates",
        events.topic,
        events.partition,
        applied,
        len(store),
    )
    restored.store = store
    restored.folded = True
    return restored
