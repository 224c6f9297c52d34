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

from confluent_kafka import Consumer, TopicPartition

from actors.kafka import consumer_config
from actors.memory import release_freed_memory
from actors.scan import scan_partition
from actors.watermarks import watermarks
from topology.codec import CHECKPOINT_KEY, Checkpoint, StaleSnapshotError, decode_checkpoint
from topology.protocol import Aggregate
from topology.settings import Settings
from topology.store import SnapshotStore

__all__ = ["Restored", "restore_partition"]

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
    events partition's end offset, and the seconds it took."""

    store: SnapshotStore
    checkpoint: Checkpoint | None
    records: int
    stale: bool
    events_end: int
    seconds: float


def restore_partition(
    settings: Settings,
    aggregate: Aggregate,
    *,
    snapshots: TopicPartition,
    events: TopicPartition,
) -> Restored:
    """Read ``snapshots`` from its start to its end (partition EOF) into a store."""
    started = time.monotonic()
    consumer = Consumer(
        consumer_config(settings, group_id=f"{settings.app_id}-restore", **_RESTORE_CONSUMER)
    )
    store = SnapshotStore(aggregate)
    load = store.load
    checkpoint: Checkpoint | None = None
    records = 0
    stale = False
    try:
        for msg in scan_partition(consumer, snapshots, wait=0.05):
            key = msg.key()
            if key == CHECKPOINT_KEY:
                checkpoint = decode_checkpoint(msg.value())
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
    return Restored(store, checkpoint, records, stale, events_end, time.monotonic() - started)
