"""Opening a partition: fence its predecessor, restore its state (or fold the events when the
snapshots are of another schema), restore its id memory, and position its commands consumer
at the checkpoint. A standby that takes over (``promote_partition``) fences the same way, then
reads only what its tail had left of the snapshots and replies.

Invariant: the writer is opened (its ``init_transactions`` fences every earlier producer of
the partition) before anything is read, so nothing read can change behind the restore; a
checkpoint outside the commands (or internal commands) log blocks the partition
(``PartitionBlockedError``) rather than skip or replay commands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from actors.commit import PartitionBlockedError
from actors.committed import Committed
from actors.generations import outside_the_log
from actors.idstore import IdStore, open_id_store
from actors.kafka import consumer_config
from actors.messages import Counters, RestoredFrom
from actors.metrics import PartitionMetrics
from actors.restore import restore_or_fold
from actors.transactional import TransactionalWriter
from actors.watermarks import watermarks
from topology.codec.keys import TOUCH_KEY
from topology.envelopes import Checkpoint
from topology.names import Names
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["Opened", "commands_consumer", "new_writer", "open_partition", "promote_partition"]

log = logging.getLogger(__name__)

PROMOTION_QUICK_ASKS = 6
"""A promotion's fence asks quickly this often before the writer's one retry policy: about
a second of quick asks, where librdkafka alone would wait 500 ms after each refusal."""


@dataclass
class Opened:
    """The clients of an opened partition: its writer, id memory and commands consumer."""

    writer: TransactionalWriter
    ids: IdStore
    consumer: Consumer


def new_writer(settings: Settings, partition: int, *, quick_asks: int = 0) -> TransactionalWriter:
    """The partition's transactional writer, initialised: it fences every earlier producer
    of the same transactional id (``quick_asks``: see ``TransactionalWriter``). A fence is
    final here, however it came (the supervisor, which knows whether a successor exists,
    replaces a fenced actor)."""
    txn = Names.of(settings).partition_txn(partition)
    writer = TransactionalWriter(settings, txn, stale_fence_is_fatal=False, quick_asks=quick_asks)
    writer.open()
    return writer


def touch(writer: TransactionalWriter, settings: Settings, partition: int, snapshots: str) -> None:
    """Append a tombstone under `TOUCH_KEY` to the snapshots partition and every replies
    partition this partition restores from, and commit: after an unclean broker restart a
    partition's high watermark can stay below its log end until the next append, and a
    restore reading up to it would miss committed snapshots or remembered replies."""
    replies = TopicLayout.of(settings).name(TopicKind.REPLIES)
    with writer.transaction():
        writer.produce(snapshots, None, TOUCH_KEY, partition)
        for p in TopicLayout.of(settings).replies_of(partition):
            writer.produce(replies, None, TOUCH_KEY, p)


def _starts(
    settings: Settings,
    partition: int,
    committed: Committed,
    consumer: Consumer,
    checkpoint: Checkpoint | None,
) -> list[TopicPartition]:
    """Where the commands and internal commands partitions resume: the checkpoint's offsets
    (None: nothing committed yet, the start); outside the log, the partition is blocked."""
    starts = []
    for kind in (TopicKind.COMMANDS, TopicKind.INTERNAL):
        source = TopicPartition(committed.topics[kind], partition)
        low, high = watermarks(consumer, source)
        if checkpoint is None:
            start = max(low, 0)
        elif kind is TopicKind.COMMANDS:
            start = checkpoint.next_offset
        else:
            start = checkpoint.internal_offset
        if checkpoint is not None and not low <= start <= high:
            internal = source.topic if kind is TopicKind.INTERNAL else ""
            raise PartitionBlockedError(
                outside_the_log(settings, partition, start, low, high, topic=internal)
            )
        starts.append(TopicPartition(source.topic, partition, start))
    return starts


def open_partition(
    settings: Settings,
    partition: int,
    committed: Committed,
    counters: Counters,
    metrics: PartitionMetrics,
    *,
    member: int = 0,
) -> Opened:
    """Fence, restore into ``committed`` (and ``counters``), position the consumer; the id
    memory is member ``member``'s. The caller closes what was opened when this raises
    (``Opened`` is returned whole or not)."""
    c = committed
    writer = new_writer(settings, partition)
    touch(writer, settings, partition, c.topics[TopicKind.SNAPSHOTS])
    restored = restore_or_fold(
        settings,
        c.codec,
        snapshots=TopicPartition(c.topics[TopicKind.SNAPSHOTS], partition),
        events=TopicPartition(c.topics[TopicKind.EVENTS], partition),
    )
    c.restored(restored.store, restored.events_end, restored.checkpoint, restored.slot_record)
    counters.restored_aggregates = len(c.states)
    counters.restored_records = restored.records
    counters.restore_seconds = restored.seconds
    if restored.folded:
        counters.restored_from = RestoredFrom.EVENTS
    metrics.restore(restored.records, restored.seconds)
    log.info(
        "partition %d restored %d aggregates from %d snapshot records in %.2fs",
        partition,
        len(c.states),
        restored.records,
        restored.seconds,
    )
    ids = open_id_store(settings, partition, member)
    consumer = _ids_and_consumer(
        settings, partition, c, counters=counters, ids=ids, checkpoint=restored.checkpoint
    )
    return Opened(writer, ids, consumer)


def _catch_up_ids(
    settings: Settings, partition: int, committed: Committed, counters: Counters, ids: IdStore
) -> None:
    """Bring ``ids`` to the replies' end (checked against the marks)."""
    got = ids.restore(settings, partition, committed.now_ms(), expect=committed.marks)
    counters.ids_restored, counters.ids_restore_seconds = got.records, got.seconds
    how = "reused" if got.reused else "restored from the window's start"
    log.info(
        "partition %d: id memory %s, %d changelog records in %.2fs",
        partition,
        how,
        got.records,
        got.seconds,
    )


def commands_consumer(settings: Settings) -> Consumer:
    """The partition's commands consumer (assigned by hand, never subscribed)."""
    group = Names.of(settings).commands_group
    return Consumer(consumer_config(settings, group_id=group, **{"auto.offset.reset": "error"}))


def _position(
    settings: Settings,
    partition: int,
    committed: Committed,
    *,
    counters: Counters,
    consumer: Consumer,
    checkpoint: Checkpoint | None,
) -> None:
    """Assign ``consumer`` at ``checkpoint`` (``_starts``) and record where it resumes."""
    starts = _starts(settings, partition, committed, consumer, checkpoint)
    committed.positioned(starts[0].offset, starts[1].offset)
    counters.committed_offset = committed.next_offset
    consumer.assign(starts)


def _ids_and_consumer(
    settings: Settings,
    partition: int,
    committed: Committed,
    *,
    counters: Counters,
    ids: IdStore,
    checkpoint: Checkpoint | None,
) -> Consumer:
    """Bring ``ids`` to the replies' end (checked against the marks), then the commands
    consumer, assigned at ``checkpoint``. Closes ``ids`` when it raises."""
    try:
        _catch_up_ids(settings, partition, committed, counters, ids)
        consumer = commands_consumer(settings)
    except BaseException:
        ids.close()
        raise
    try:
        _position(
            settings,
            partition,
            committed,
            counters=counters,
            consumer=consumer,
            checkpoint=checkpoint,
        )
    except BaseException:
        consumer.close()
        ids.close()
        raise
    return consumer


def promote_partition(
    settings: Settings,
    partition: int,
    committed: Committed,
    *,
    counters: Counters,
    ids: IdStore,
    consumer: Consumer,
    drain: Callable[[], None],
    steps_ms: dict[str, float],
) -> Opened:
    """A standby's takeover of the partition whose state it holds in ``committed`` (at a
    batch boundary) and id memory in ``ids``: fence, touch, ``drain`` (apply what is left of
    ``snapshots[p]`` and of the replies: their ends are final once fenced), then take the
    events' end and position ``consumer`` (the standby's commands consumer, made and
    connected ahead) at the last checkpoint. The id memory is read again from the changelog
    (``IdStore.restore``, beside the positioning) only if it lacks one of the checkpoint's
    marks. Each step's milliseconds go to ``steps_ms``. Closes ``consumer`` when it raises;
    on failure the caller closes ``ids``."""
    c = committed
    mark = time.monotonic()

    def step(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        steps_ms[name] = round((now - mark) * 1000, 1)
        mark = now

    try:
        writer = new_writer(settings, partition, quick_asks=PROMOTION_QUICK_ASKS)
    except BaseException:
        consumer.close()
        raise
    step("fence")
    try:
        touch(writer, settings, partition, c.topics[TopicKind.SNAPSHOTS])
        step("touch")
        drain()
        step("tail")
        checkpoint = c.position() if c.seq > 0 else None
        lacking = ids.lacks(settings, c.marks, c.now_ms())
        with ThreadPoolExecutor(1, thread_name_prefix="ids") as pool:
            catching_up = (
                pool.submit(_catch_up_ids, settings, partition, c, counters, ids)
                if lacking
                else None
            )
            try:
                events = TopicPartition(c.topics[TopicKind.EVENTS], partition)
                c.reached_events(watermarks(consumer, events)[1])
                _position(
                    settings,
                    partition,
                    c,
                    counters=counters,
                    consumer=consumer,
                    checkpoint=checkpoint,
                )
                if catching_up is not None:
                    log.warning(
                        "partition %d: the standby's id memory lacks the marks of replies "
                        "partitions %s; reading the changelog again",
                        partition,
                        lacking,
                    )
                    catching_up.result()
            except BaseException:
                if catching_up is not None:
                    wait([catching_up])  # the caller closes ``ids``: not while it is in use
                raise
        step("commands" if catching_up is None else "ids_and_commands")
    except BaseException:
        consumer.close()
        writer.close()
        raise
    return Opened(writer, ids, consumer)
