"""A standby of one partition: a read-only member that holds what the writer committed.

It restores ``snapshots[p]`` as the writer does (without fencing: it never writes), restores
its own id memory (``Names.ids_dir`` of its member number), then tails, ``read_committed``,
``snapshots[p]`` from where its restore ended and the partition's replies lanes from its id
memory's positions. Snapshot records are buffered until their batch's checkpoint arrives
(``topology.follow.Batches``) and then applied whole (``Committed.followed``), so its state
is always the writer's at some commit sequence, and its position says which. It keeps the
deadline index as the writer does. Status: RESTORING → FOLLOWING; a failure ends in FAILED
(the coordinator retires and replaces it). Its queries are ``MemberViews``'; they wait on the
condition its tail notifies.

Invariant: it never opens a transactional producer, so it can never fence its writer. A
takeover (``actors.member``) halts its tail at a batch boundary (``halt``), fences, drains
what is left (``drain``) and hands its state and id memory to a writer (``hand_over``),
with the slot indexes its tail builds between polls once the application has slots
(``actors.slotindex``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec
import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from actors.committed import Clock, Committed, wall_ms
from actors.idstore import IdStore, open_id_store
from actors.kafka import consumer_config
from actors.messages import Counters, PartitionStats, PartitionStatus, ServedBy
from actors.opening import commands_consumer
from actors.restore import restore_partition
from actors.routes import Routes
from actors.slotindex import index_slots
from actors.views import MemberViews
from actors.watermarks import watermarks
from topology.codec.aggregate import Codec
from topology.follow import Batch, Batches
from topology.moves import encode_slot_record
from topology.names import Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.store import SnapshotStore
from topology.topics import TopicKind, TopicLayout

__all__ = ["StandbyWorker"]

log = logging.getLogger(__name__)

# A fetch returns as soon as records arrive; an idle one waits at most 50 ms, which bounds
# how far behind a commit a read-your-writes read on a standby may have to wait.
_TAIL_CONSUMER = {"fetch.wait.max.ms": 50, "enable.partition.eof": False}
_POLL_SECONDS = 0.025  # an idle poll's wait: a takeover's halt waits for the poll in hand
_DRAIN_POLL_SECONDS = 0.005  # a takeover waits on its drain: poll in small steps


class StandbyWorker(MemberViews):
    """Standby member ``member`` (>= 1) of partition ``partition`` of the application in
    ``settings``, running ``aggregate``; with ``generation=None`` it follows the desired
    state's snapshot generation (read from the control topic)."""

    served_by = ServedBy.STANDBY

    def __init__(
        self,
        settings: Settings,
        partition: int,
        member: int,
        aggregate: AnyAggregate,
        *,
        generation: int | None = 0,
        start: bool = True,
        clock: Clock = wall_ms,
        routes: Routes | None = None,
    ) -> None:
        if member < 0:
            raise ValueError(f"a member's number is 0 or above, not {member}")
        routing = None
        if generation is None:
            from actors.control_store import read_desired

            desired = read_desired(settings)
            generation, routing = desired.partition(partition).generation, desired.table()
        self.settings, self.partition, self.member = settings, partition, member
        layout = TopicLayout.of(settings)
        topics = {kind: layout.name(kind) for kind in TopicKind}
        topics[TopicKind.SNAPSHOTS] = layout.snapshots(generation)
        codec = Codec(aggregate)
        self.committed = Committed(codec, generation, topics, SnapshotStore(codec), clock=clock)
        self.committed.routing = routing  # a promoted standby's writer routes by it
        self.routes = routes  # the member's, kept current by the coordinator
        self.status = PartitionStatus.STOPPED
        self.error: str | None = None
        self.counters = Counters()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ids: IdStore | None = None
        self._consumer: Consumer | None = None
        self._commands: Consumer | None = None
        self._batches = Batches()
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Restore, then follow in a thread of its own. A failure is recorded (FAILED, with
        the reason), not raised: the coordinator replaces a failed standby."""
        self.status = self.status.move(PartitionStatus.RESTORING)
        try:
            self._open()
        except Exception as e:
            self._close()
            self._fail(f"opening: {type(e).__name__}: {e}")
            return
        self.status = self.status.move(PartitionStatus.FOLLOWING)
        self._thread = threading.Thread(
            target=self._follow, name=f"standby-{self.partition}.{self.member}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop following and close the clients."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._close()
        if self.status is PartitionStatus.FOLLOWING:
            self.status = self.status.move(PartitionStatus.STOPPED)

    def _open(self) -> None:
        c, p = self.committed, self.partition
        restored = restore_partition(
            self.settings,
            c.codec,
            snapshots=TopicPartition(c.topics[TopicKind.SNAPSHOTS], p),
            events=TopicPartition(c.topics[TopicKind.EVENTS], p),
        )
        if restored.stale:
            raise RuntimeError(
                "snapshots of another state schema: the writer folds its events and a "
                "rebuild follows; this standby waits for the rebuilt generation"
            )
        c.restored(restored.store, restored.events_end, restored.checkpoint, restored.slot_record)
        if restored.checkpoint is not None:
            c.positioned(restored.checkpoint.next_offset, restored.checkpoint.internal_offset)
        self.counters.restored_aggregates = len(c.states)
        self.counters.restored_records = restored.records
        self.counters.restore_seconds = restored.seconds
        self._ids = open_id_store(self.settings, p, self.member)
        got = self._ids.restore(self.settings, p, c.now_ms(), expect=c.marks)
        self.counters.ids_restored, self.counters.ids_restore_seconds = got.records, got.seconds
        group = Names.of(self.settings).group("standby")
        self._consumer = Consumer(consumer_config(self.settings, group_id=group, **_TAIL_CONSUMER))
        replies = c.topics[TopicKind.REPLIES]
        positions = self._ids.positions()
        self._consumer.assign(
            [TopicPartition(c.topics[TopicKind.SNAPSHOTS], p, restored.after)]
            + [
                TopicPartition(replies, lane, positions.get(lane, OFFSET_BEGINNING))
                for lane in TopicLayout.of(self.settings).replies_of(p)
            ]
        )
        # made now, so that a takeover finds it connected: it only takes the ends and seeks
        self._commands = commands_consumer(self.settings)
        log.info(
            "partition %d standby %d: restored %d aggregates at position %d; following",
            p,
            self.member,
            len(c.states),
            c.seq,
        )

    def _close(self) -> None:
        for consumer in (self._consumer, self._commands):
            if consumer is not None:
                consumer.close()
        self._consumer = self._commands = None
        if self._ids is not None:
            self._ids.close()
            self._ids = None

    def _fail(self, message: str) -> None:
        log.error("partition %d standby %d failed: %s", self.partition, self.member, message)
        self.status = self.status.move(PartitionStatus.FAILED)
        self.error = message

    # -- the tail --------------------------------------------------------------------------

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
                index_slots(self.committed, self._ids, self.routes)
            except Exception as e:
                log.exception("partition %d standby %d stopped", self.partition, self.member)
                self._fail(f"following: {type(e).__name__}: {e}")
                return

    def _poll(self, timeout: float = _POLL_SECONDS) -> list[Any]:
        """One poll of the tail (waiting up to ``timeout`` for 1,000 messages), applied:
        whole batches, and the replies to the id memory. Returns the snapshot partition's
        messages it read."""
        assert self._consumer is not None and self._ids is not None
        snapshots = self.committed.topics[TopicKind.SNAPSHOTS]
        done: list[Batch] = []
        read: list[Any] = []
        replies: dict[int, list[Any]] = {}
        for msg in self._consumer.consume(1000, timeout=timeout):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(error)
            if msg.topic() == snapshots:
                read.append(msg)
                batch = self._batches.feed(msg.key(), msg.value())
                if batch is not None:
                    done.append(batch)
            else:
                replies.setdefault(msg.partition() or 0, []).append(msg)
        for lane, messages in replies.items():
            self._ids.follow(lane, messages, merge=self.settings.reply_lanes > 1)
        for batch in done:
            self.committed.followed(batch.records, batch.checkpoint, batch.slot_record)
            self.counters.batches += 1
        self.counters.committed_offset = self.committed.next_offset
        self.counters.last_commit_at = time.time()  # when the tail last polled
        return read

    # -- a takeover ------------------------------------------------------------------------

    def halt(self, timeout: float = 30.0) -> None:
        """Stop the tail after the poll in hand (applied whole: the state is a checkpoint's),
        keeping the clients; raises unless it was following."""
        if self.status is not PartitionStatus.FOLLOWING:
            raise RuntimeError(f"partition {self.partition} member {self.member} is {self.status}")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"standby {self.member}'s tail did not stop in {timeout:g}s")
        if self.status is not PartitionStatus.FOLLOWING:  # the tail failed meanwhile
            raise RuntimeError(f"standby {self.member} is {self.status}: {self.error}")

    def drain(self, timeout: float = 30.0) -> None:
        """Apply ``snapshots[p]`` and the partition's replies partitions to their ends as
        they are now (after a fence and a touch, final; the touch put a record in each, so
        each position moves): read until every position reaches its high watermark and no
        batch is half read. The id memory then holds every reply the writer committed."""
        assert self._consumer is not None
        c, p = self.committed, self.partition
        replies = c.topics[TopicKind.REPLIES]
        sources = [TopicPartition(c.topics[TopicKind.SNAPSHOTS], p)] + [
            TopicPartition(replies, lane) for lane in TopicLayout.of(self.settings).replies_of(p)
        ]
        ends = [watermarks(self._consumer, source)[1] for source in sources]
        deadline = time.monotonic() + timeout
        while True:
            self._poll(_DRAIN_POLL_SECONDS)
            at = [tp.offset for tp in self._consumer.position(sources)]
            if all(a >= e for a, e in zip(at, ends, strict=True)) and not self._batches.pending:
                return
            if time.monotonic() > deadline:
                behind = {
                    f"{s.topic}[{s.partition}]": f"{a} of {e}"
                    for s, a, e in zip(sources, at, ends, strict=True)
                    if a < e
                }
                raise TimeoutError(
                    f"partition {p} standby {self.member}: not read to the end in "
                    f"{timeout:g}s: {behind}"
                )

    @property
    def ids(self) -> IdStore | None:
        """Its id memory (None once closed or handed over)."""
        return self._ids

    def commands(self) -> Consumer:
        """The commands consumer made at opening, connected and not assigned; the caller
        owns it from now on (a takeover positions it)."""
        consumer, self._commands = self._commands, None
        if consumer is None:
            raise RuntimeError(f"partition {self.partition} standby {self.member} has none")
        return consumer

    def hand_over(self) -> IdStore:
        """The id memory, now the writer's (this standby closes only its tail consumer)."""
        ids, self._ids = self._ids, None
        assert ids is not None
        self._close()
        self.status = self.status.move(PartitionStatus.STOPPED)
        return ids

    # -- queries ---------------------------------------------------------------------------

    def ready(self) -> str:
        """The status once the constructor has restored (Ray callers await this)."""
        return str(self.status)

    @property
    def generation(self) -> int:
        return self.committed.generation

    def holds_ids(self, keys: list[bytes]) -> list[bool]:
        """Whether its id memory holds each id key (tests, diagnosis)."""
        ids = self._ids
        return [False] * len(keys) if ids is None else [v is not None for v in ids.lookup(keys)]

    def stats(self) -> PartitionStats:
        """Status, position and counters, for ``status`` and the coordinator (its lag is the
        writer's ``seq`` minus its own)."""
        slots = self.committed.slot_record
        return PartitionStats(
            partition=self.partition,
            status=self.status,
            error=self.error,
            aggregates=len(self.committed.states),
            generation=self.generation,
            paused=False,
            rss_bytes=psutil.Process().memory_info().rss,
            ids_disk_bytes=0 if self._ids is None else self._ids.disk_bytes(),
            member=self.member,
            seq=self.committed.seq,
            slot_record=None if slots is None else encode_slot_record(slots),
            **msgspec.structs.asdict(self.counters),
        )
