"""The single writer of one partition: restore, then poll → step → one transaction per batch.

``PartitionWorker`` is a plain class (usable without Ray); ``actors.launcher`` wraps it in
``ray.remote`` with names and restart options. Invariants:

- the in-memory state is exactly the state committed to Kafka: a batch's changes are applied
  only after its transaction commits; an aborted batch leaves it untouched;
- the committed command offset only moves forward;
- the constructor fences any predecessor (``init_transactions`` on ``{app}-{partition}``)
  and restores, so a restarted actor is whole before it serves a query;
- it reads and writes one snapshot generation (``TopicLayout.snapshots``); with
  ``generation=None`` it follows the coordinator's desired state (generation and paused flag
  from the control topic), also across Ray's restarts; snapshots of another state schema are
  never loaded: the state is then rebuilt from the events;
- between ``pause`` and ``resume`` it takes no command, so ``switch_generation`` installs a
  rebuilt generation that reflects exactly the events it committed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, TypeVar

import msgspec
import psutil
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from opentelemetry import trace

from actors import tracing
from actors.idstore import IdStore, open_id_store
from actors.kafka import (
    AbortableError,
    FatalError,
    FencedError,
    classify,
    consumer_config,
    producer_config,
    retrying,
)
from actors.metrics import PartitionMetrics
from actors.records import in_record
from actors.restore import restore_partition
from actors.watermarks import watermarks
from ledger.aggregate import LEDGER
from topology.aborts import AbortAction, AbortPolicy
from topology.codec import (
    CHECKPOINT_KEY,
    Checkpoint,
    Slot,
    Snapshot,
    encode_checkpoint,
    encode_key,
    encode_snapshot,
)
from topology.protocol import Aggregate
from topology.settings import Settings
from topology.step import BatchResult, InRecord, OutcomeKind, process_batch, set_aside
from topology.store import SnapshotStore
from topology.topics import TopicKind, TopicLayout

__all__ = ["Counters", "GenerationMismatchError", "PartitionStatus", "PartitionWorker"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_RESTARTS = 3


class PartitionStatus(StrEnum):
    RESTORING = "restoring"
    RUNNING = "running"
    FENCED = "fenced"
    FAILED = "failed"
    STOPPED = "stopped"
    BLOCKED = "blocked"  # waits for an operator (see `unblock`); never restarted by itself


def _configure_logging(level: str) -> None:
    """``EVENTLEDGER_LOG_LEVEL`` (e.g. INFO: restores, the id memory, positions) for the
    ``actors`` loggers of this process. A Ray worker's root logger has no handler (only
    Python's last resort, WARNING and up, prints), so the level comes with a handler."""
    level = level.strip().upper()
    if not level:
        return
    logger = logging.getLogger("actors")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


class PartitionBlockedError(Exception):
    """The partition cannot go on without an operator: its message says why and how."""


class GenerationMismatchError(RuntimeError):
    """The actor serves another snapshot generation than the one it was asked to serve."""


@dataclass
class Counters:
    """What the partition has done since this worker started (restores included)."""

    processed: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    dlq: int = 0
    batches: int = 0
    aborts: int = 0
    producer_restarts: int = 0
    committed_offset: int = -1
    first_batch_at: float = 0.0
    last_commit_ms: float = 0.0
    last_commit_at: float = 0.0
    restored_aggregates: int = 0
    restored_records: int = 0
    restore_seconds: float = 0.0
    restored_from: str = "snapshots"  # "events" when the snapshots were of another schema
    ids_restored: int = 0  # changelog records read into the id memory at the last start
    ids_restore_seconds: float = 0.0


class PartitionWorker:
    """Owns partition ``partition`` of the application in ``settings``."""

    def __init__(
        self,
        settings: Settings,
        partition: int,
        *,
        aggregate: Aggregate = LEDGER,
        generation: int | None = 0,
        start: bool = True,
    ) -> None:
        paused = False
        if generation is None:  # the coordinator's actor: follow the desired state
            from actors.control_store import read_partition_record

            desired = read_partition_record(settings, partition)
            generation, paused = desired.generation, desired.paused
        self.generation = generation
        self.settings = settings
        self.partition = partition
        self.aggregate = aggregate
        self.layout = TopicLayout.of(settings)
        self.transactional_id = f"{settings.app_id}-{partition}"
        self.status = PartitionStatus.STOPPED
        self.error: str | None = None
        self.counters = Counters()
        self._states = SnapshotStore(aggregate)
        self._topics = {kind: self.layout.name(kind) for kind in TopicKind}
        self._topics[TopicKind.SNAPSHOTS] = self.layout.snapshots(generation)
        self._commands = TopicPartition(self._topics[TopicKind.COMMANDS], partition)
        self._next_offset = 0
        self._checkpoint: Checkpoint | None = None
        self._clock_ms = 0  # the largest batch time committed: never runs backwards
        self._ids: IdStore | None = None
        self._reply_ends: dict[int, int] = {}  # replies partition → next offset written
        self._aborts = AbortPolicy()
        self._batch_started_at = 0.0
        self._events_offset = 0
        self._stop = threading.Event()
        self._hold = threading.Event()  # pause requested
        self._held = threading.Condition()
        self._parked = False  # the loop holds (no batch in flight); under _held
        if paused:
            self._hold.set()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._offsets: Consumer | None = None  # unassigned: offset queries during a switch
        tracing.configure_telemetry("eventledger")
        _configure_logging(os.environ.get("EVENTLEDGER_LOG_LEVEL", ""))
        self.metrics = PartitionMetrics(settings.app_id, partition)
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Fence the predecessor, restore, position the consumer, start the loop thread
        (unless the partition is blocked: then its status says why and how to go on)."""
        self._stop.clear()
        try:
            self._open()
        except PartitionBlockedError as e:
            self._fail(PartitionStatus.BLOCKED, str(e))
            return
        self._thread = threading.Thread(
            target=self._run, name=f"partition-{self.partition}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in flight, then close the clients."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._close()
        if self.status is PartitionStatus.RUNNING:
            self.status = PartitionStatus.STOPPED

    def _new_producer(self) -> Producer:
        """A transactional producer of this partition, initialised: it fences every earlier
        one of the same transactional id."""
        producer = Producer(producer_config(self.settings, transactional_id=self.transactional_id))
        self._call("init_transactions", producer.init_transactions, 30, attempts=40)
        return producer

    def _open(self) -> None:
        """Fence, restore, assign the consumer: whole or not at all. On any failure the
        clients are closed, the status is FAILED with the reason and the loop is told to stop
        (the supervisor replaces a FAILED actor; nothing polls an unassigned consumer)."""
        self.status = PartitionStatus.RESTORING
        try:
            self._open_clients()
        except PartitionBlockedError:
            self._close()  # the caller records why (BLOCKED) and waits for `unblock`
            raise
        except FencedError as e:
            self._close()
            self.status, self.error = PartitionStatus.FENCED, str(e)
            self._stop.set()
            raise
        except Exception as e:
            self._close()
            self.status, self.error = PartitionStatus.FAILED, f"opening: {type(e).__name__}: {e}"
            self._stop.set()
            log.error("partition %d: %s", self.partition, self.error)
            raise
        self.status = PartitionStatus.RUNNING
        log.info(
            "partition %d running from command offset %d with %d aggregates",
            self.partition,
            self._next_offset,
            len(self._states),
        )

    def _open_clients(self) -> None:
        self._producer = self._new_producer()
        self._restore()
        if self._checkpoint is not None:
            self._clock_ms = max(self._clock_ms, self._checkpoint.clock_ms)
        self._ids = open_id_store(self.settings, self.partition)
        ids = self._ids.restore(self.settings, self.partition, self._now_ms())
        self.counters.ids_restored = ids.records
        self.counters.ids_restore_seconds = ids.seconds
        log.info(
            "partition %d: id memory %s, %d changelog records in %.2fs",
            self.partition,
            "reused" if ids.reused else "restored from the window's start",
            ids.records,
            ids.seconds,
        )
        self._consumer = Consumer(
            consumer_config(
                self.settings, group_id=self.settings.app_id, **{"auto.offset.reset": "error"}
            )
        )
        low, high = watermarks(self._consumer, self._commands)
        if self._checkpoint is None:  # nothing committed to this partition yet
            self._next_offset = max(low, 0)
        else:
            self._next_offset = self._checkpoint.next_offset
            if not low <= self._next_offset <= high:
                raise PartitionBlockedError(self._outside_the_log(low, high))
        self.counters.committed_offset = self._next_offset
        self._consumer.assign(
            [TopicPartition(self._commands.topic, self.partition, self._next_offset)]
        )

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None
        if self._ids is not None:
            self._ids.close()
            self._ids = None
        self._producer = None

    # -- restore ---------------------------------------------------------------------------

    def _restore(self) -> None:
        """Read ``snapshots[p]`` (this generation) to its end into memory, and the checkpoint
        that says where commands resume; snapshots of another state schema are never loaded:
        the state is folded from the events instead."""
        restored = restore_partition(
            self.settings,
            self.aggregate,
            snapshots=TopicPartition(self._topics[TopicKind.SNAPSHOTS], self.partition),
            events=TopicPartition(self._topics[TopicKind.EVENTS], self.partition),
        )
        self._events_offset = restored.events_end
        self._checkpoint = restored.checkpoint
        states = restored.store
        if restored.stale:
            log.warning("partition %d: stale snapshots; folding the events", self.partition)
            states = self._rebuild_from_events()
        self._states = states
        c = self.counters
        c.restored_aggregates = len(states)
        c.restored_records = restored.records
        c.restore_seconds = restored.seconds
        self.metrics.restore(restored.records, restored.seconds)
        log.info(
            "partition %d restored %d aggregates from %d snapshot records in %.2fs",
            self.partition,
            len(states),
            restored.records,
            restored.seconds,
        )

    def _rebuild_from_events(self) -> SnapshotStore:
        """The partition's state folded from ``events[p]`` from offset 0 (a restore that met
        snapshots of another state schema; the coordinator then rebuilds a new generation)."""
        from actors.replay import replay_partition

        slots: dict[str, Slot] = {}
        applied, position = replay_partition(self.settings, self.aggregate, self.partition, slots)
        store = SnapshotStore(self.aggregate)
        version = self.aggregate.state_schema_version
        for aggregate_id, slot in slots.items():
            snapshot = Snapshot(version, aggregate_id, slot, position)
            store.load(encode_key(aggregate_id), encode_snapshot(self.aggregate, snapshot))
        self.counters.restored_from = "events"
        log.info(
            "partition %d: folded %d events into %d aggregates", self.partition, applied, len(store)
        )
        return store

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        restarts = 0
        while not self._stop.is_set():
            with self._held:  # checked and cleared together: see pause()
                if self._hold.is_set():
                    self._parked = True
                    self._held.notify_all()
                    self._held.wait(0.05)
                    continue
                self._parked = False
            try:
                batch = self._poll_batch()
                if batch:
                    self._process(batch)
                restarts = 0
            except FencedError as e:
                self._fail(PartitionStatus.FENCED, str(e))
                return
            except PartitionBlockedError as e:
                self._fail(PartitionStatus.BLOCKED, str(e))
                return
            except FatalError as e:
                restarts += 1
                if restarts > _RESTARTS:
                    self._fail(PartitionStatus.FAILED, str(e))
                    return
                log.warning("partition %d: %s; re-creating the producer", self.partition, e)
                self.counters.producer_restarts += 1
                self._close()
                try:
                    self._open()
                except FencedError as fenced:
                    self._fail(PartitionStatus.FENCED, str(fenced))
                    return
                except PartitionBlockedError as blocked:
                    self._fail(PartitionStatus.BLOCKED, str(blocked))
                    return
                except Exception:  # _open recorded FAILED and stopped the loop
                    log.exception("partition %d: reopening failed", self.partition)
                    return
            except Exception as e:
                self._fail(PartitionStatus.FAILED, f"{type(e).__name__}: {e}")
                log.exception("partition %d stopped", self.partition)
                return

    def _fail(self, status: PartitionStatus, message: str) -> None:
        log.error("partition %d %s: %s", self.partition, status, message)
        self.status = status
        self.error = message
        self._close()

    def _poll_batch(self) -> list[Any]:
        """Block briefly for one record, then take what is already fetched, up to the
        count and time bounds; a dry poll ends the batch (low latency at low load)."""
        assert self._consumer is not None
        first = self._consumer.poll(0.02)
        if first is None:
            return []
        batch = [first]
        limit = self._aborts.batch_limit(self.settings.batch_max_commands)
        deadline = time.monotonic() + self.settings.batch_max_ms / 1000.0
        while len(batch) < limit and time.monotonic() < deadline:
            more = self._consumer.consume(limit - len(batch), timeout=0)
            if not more:
                break
            batch.extend(more)
        good = []
        for msg in batch:
            error = msg.error()
            if error is None:
                good.append(msg)
            elif error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                low, high = watermarks(self._consumer, self._commands)
                raise PartitionBlockedError(self._outside_the_log(low, high))
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("partition %d consumer: %s", self.partition, error.str())
        return good

    def _now_ms(self) -> int:
        """The partition's clock: wall time, but never behind a batch already committed."""
        return max(int(time.time() * 1000), self._clock_ms)

    def _process(self, messages: list[Any]) -> None:
        self._batch_started_at = time.time()
        ids = self._ids
        if ids is None:
            raise RuntimeError(f"partition {self.partition}: no id memory (not opened)")
        records = [in_record(m) for m in messages]
        now_ms = self._now_ms()
        result = process_batch(
            self.aggregate,
            self._states,
            records,
            partition=self.partition,
            partitions=self.settings.partitions,
            source_topic=self._commands.topic,
            events_offset=self._events_offset,
            ids=ids,
            window_ms=self.settings.idempotency_window_ms,
            now_ms=now_ms,
            reply_lanes=self.settings.reply_lanes,
        )
        if result.next_offset <= self._next_offset:
            raise RuntimeError(
                f"partition {self.partition}: command offset {result.next_offset} would not "
                f"move forward from {self._next_offset}"
            )
        try:
            self._transact(result, Checkpoint(result.next_offset, now_ms))
        except AbortableError as e:
            self._after_abort(records, e)
            return
        if self._aborts.aborts:
            self.error = None  # the aborts are over
        self._aborts.committed(wrote_events=bool(result.events))
        # Committed: only now does the batch become the state that queries see, and its
        # replies what the id memory remembers (with how far its changelog now reaches).
        self._states.install((r.key, r.value) for r in result.snapshots)
        ids.install(result.remembered, self._reply_ends)
        self._next_offset = result.next_offset
        self._clock_ms = now_ms
        self._count(result)

    def _after_abort(self, records: list[InRecord], error: AbortableError) -> None:
        """Abort, rewind, and follow the abort policy: retry after a pause, isolate the first
        record, set it aside, or block the partition (`topology.aborts`)."""
        log.warning("partition %d: aborting a batch of %d: %s", self.partition, len(records), error)
        self.counters.aborts += 1
        self.metrics.abort()
        assert self._producer is not None and self._consumer is not None
        self._call("abort", self._producer.abort_transaction, 30)
        # After a failed produce the idempotent producer's sequence state for that partition is
        # spoiled (the next transaction's records time out: "requires epoch bump"): a new
        # producer bumps the epoch and starts clean, fencing the old one.
        self._producer = self._new_producer()
        self._consumer.seek(TopicPartition(self._commands.topic, self.partition, self._next_offset))
        action = self._aborts.aborted(len(records))
        self.error = f"{self._aborts.aborts} aborts in a row ({action}): {error}"
        if action is AbortAction.BLOCK:
            raise PartitionBlockedError(
                f"every transaction aborts, even of one record alone: {error}. Fix the cause "
                f"(topic configs, ACLs, the broker), then run `eventledger unblock --app "
                f"{self.settings.app_id} --partition {self.partition}`"
            )
        if action is AbortAction.SET_ASIDE:
            self._set_aside(records[0], str(error))
            return
        self._stop.wait(self._aborts.pause())

    def _set_aside(self, record: InRecord, reason: str) -> None:
        """Dead-letter `record` in a transaction of its own (it kept aborting alone)."""
        now_ms = self._now_ms()
        result = set_aside(
            self.aggregate,
            record,
            reason,
            partition=self.partition,
            source_topic=self._commands.topic,
            events_offset=self._events_offset,
            now_ms=now_ms,
            reply_lanes=self.settings.reply_lanes,
        )
        try:
            self._transact(result, Checkpoint(result.next_offset, now_ms))
        except AbortableError as e:
            raise PartitionBlockedError(
                f"offset {record.offset} could not even be set aside: {e}"
            ) from e
        log.error("partition %d: set offset %d aside: %s", self.partition, record.offset, reason)
        assert self._ids is not None and self._consumer is not None
        self._ids.install(result.remembered, self._reply_ends)
        self._clock_ms = now_ms
        self._next_offset = result.next_offset
        self._consumer.seek(TopicPartition(self._commands.topic, self.partition, self._next_offset))
        self._aborts.committed(set_aside=True)
        self._count(result)

    def _outside_the_log(self, low: int, high: int) -> str:
        why = (
            "commands were deleted (retention) before they were processed"
            if self._next_offset < low
            else "the commands topic was re-created or truncated"
        )
        return (
            f"commands resume at offset {self._next_offset}, but commands[{self.partition}] "
            f"holds offsets {low} to {high}: {why}. Nothing is skipped by itself: to go on "
            f"from offset N (between {low} and {high}), run `eventledger unblock --app "
            f"{self.settings.app_id} --partition {self.partition} --from-offset N`"
        )

    def _transact(self, result: BatchResult, checkpoint: Checkpoint) -> None:
        """One Kafka transaction for the whole batch, in order, each step checked; what
        fails comes out classified (AbortableError: abort and rewind)."""
        try:
            self._produce_and_commit(result, checkpoint)
        except KafkaException as e:  # from produce(): classify like the rest
            raise classify(e, during="produce") from e
        except BufferError as e:  # the producer's queue is full: this batch cannot fit now
            raise AbortableError(f"produce: the producer queue is full ({e})") from e

    def _produce_and_commit(self, result: BatchResult, checkpoint: Checkpoint) -> None:
        producer = self._producer
        assert producer is not None
        topics = self._topics
        trace_headers = self._trace(result)
        started = time.monotonic()
        with tracing.tracer().start_as_current_span(
            "commit",
            attributes={
                "eventledger.partition": self.partition,
                "eventledger.batch.size": len(result.outcomes),
                "eventledger.offset.next": result.next_offset,
            },
        ):
            # 1. begin
            self._call("begin", producer.begin_transaction)
            produce: Callable[..., None] = producer.produce  # headers: list[(str, bytes)]
            # 2. events, each carrying the trace context of the command that caused it
            events = topics[TopicKind.EVENTS]
            last = len(result.events) - 1
            for i, r in enumerate(result.events):
                headers = r.headers
                if trace_headers and r.source_offset in trace_headers:
                    headers = headers + trace_headers[r.source_offset]
                if i == last:  # its delivery report tells how far the events log reaches
                    produce(
                        events,
                        r.value,
                        r.key,
                        r.partition,
                        on_delivery=self._on_event_delivered,
                        headers=headers or None,
                    )
                elif headers:
                    produce(events, r.value, r.key, r.partition, headers=headers)
                else:  # an empty headers list still costs librdkafka an allocation
                    produce(events, r.value, r.key, r.partition)
            # 3. the command offset, as the checkpoint beside the snapshots: restore reads both,
            # so state and position cannot disagree (and this costs no consumer-group requests)
            produce(
                topics[TopicKind.SNAPSHOTS],
                encode_checkpoint(checkpoint),
                CHECKPOINT_KEY,
                self.partition,
            )
            # 4. the last snapshot and public view of each changed aggregate, dead letters
            for kind, records in (
                (TopicKind.SNAPSHOTS, result.snapshots),
                (TopicKind.STATE, result.views),
                (TopicKind.DLQ, result.dlq),
            ):
                topic = topics[kind]
                for r in records:
                    if r.headers:
                        produce(topic, r.value, r.key, r.partition, headers=r.headers)
                    else:
                        produce(topic, r.value, r.key, r.partition)
            # 5. replies last (a read_committed reader of them waits for this commit); the
            # last one per replies partition reports how far the id memory's changelog reaches
            replies = topics[TopicKind.REPLIES]
            final = {r.partition: i for i, r in enumerate(result.replies)}
            for i, r in enumerate(result.replies):
                if final[r.partition] == i:
                    produce(replies, r.value, r.key, r.partition, on_delivery=self._on_reply)
                else:
                    produce(replies, r.value, r.key, r.partition)
            # 6. commit
            self._call("commit", producer.commit_transaction, 30)
        self.counters.last_commit_ms = (time.monotonic() - started) * 1000.0
        self.counters.last_commit_at = time.time()

    def _trace(self, result: BatchResult) -> dict[int, list[tuple[str, bytes]]]:
        """A ``handle`` span per traced command, continuing the client's trace; returns the
        trace headers to put on that command's events, by command offset."""
        tracer = tracing.tracer()
        out: dict[int, list[tuple[str, bytes]]] = {}
        for o in result.outcomes:
            parent = tracing.context_from_headers(o.headers)
            if parent is None:
                continue
            span = tracer.start_span(
                "handle",
                context=parent,
                attributes={
                    "eventledger.partition": self.partition,
                    "eventledger.offset": o.offset,
                    "eventledger.aggregate_id": o.aggregate_id or "",
                    "eventledger.command_type": o.command_type or "",
                    "eventledger.outcome": o.outcome,
                    "eventledger.code": o.code or "",
                },
            )
            out[o.offset] = tracing.headers_from_context(trace.set_span_in_context(span))
            span.end()
        return out

    def _on_event_delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self._events_offset = max(self._events_offset, msg.offset() + 1)

    def _on_reply(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            partition = msg.partition()
            self._reply_ends[partition] = max(self._reply_ends.get(partition, 0), msg.offset() + 1)

    def _count(self, result: BatchResult) -> None:
        """Counters and metrics of a committed batch (outcomes tallied once)."""
        c = self.counters
        if c.batches == 0:
            c.first_batch_at = self._batch_started_at
        c.batches += 1
        c.committed_offset = result.next_offset
        tally = Counter(o.outcome for o in result.outcomes)
        c.processed += len(result.outcomes)
        c.accepted += tally[OutcomeKind.ACCEPTED]
        c.rejected += tally[OutcomeKind.REJECTED]
        c.duplicates += tally[OutcomeKind.DUPLICATE]
        c.dlq += tally[OutcomeKind.DLQ]
        self.metrics.batch(tally, len(result.outcomes), c.last_commit_ms)

    def _call(self, during: str, fn: Callable[..., T], *args: Any, attempts: int = 5) -> T:
        """A Kafka call, retried while retriable; what still fails comes out classified."""
        try:
            return retrying(during, fn, *args, attempts=attempts, who=f"partition {self.partition}")
        except KafkaException as e:
            raise classify(e, during=during) from e

    # -- pause, switch, resume (the coordinator's rebuild) -------------------------------------

    def pause(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop taking commands once the batch in flight is committed (or aborted); returns
        when the loop holds. Raises if the loop does not hold in time or has stopped."""
        if self._offsets is None:  # ready before the switch that follows the pause
            self._offsets = Consumer(
                consumer_config(self.settings, group_id=f"{self.settings.app_id}-offsets")
            )
        with self._held:
            self._hold.set()
            thread = self._thread
            held = self._held.wait_for(
                lambda: self._parked or thread is None or not thread.is_alive(), timeout
            )
        if not held:
            raise TimeoutError(f"partition {self.partition} did not pause in {timeout:.0f}s")
        if self.status is not PartitionStatus.RUNNING:
            raise RuntimeError(f"partition {self.partition} is {self.status}: {self.error}")
        return {"committed_offset": self._next_offset, "generation": self.generation}

    def resume(self, generation: int | None = None) -> None:
        """Take commands again; with ``generation``, only if this actor serves that snapshot
        generation (raises GenerationMismatchError and stays paused otherwise: an actor that
        restarted before its switch was recorded must be replaced, not resumed)."""
        if generation is not None and generation != self.generation:
            raise GenerationMismatchError(
                f"partition {self.partition} serves generation {self.generation}, "
                f"not the desired {generation}: not resumed"
            )
        with self._held:
            self._hold.clear()
            self._held.notify_all()

    def switch_generation(
        self, generation: int, handover: Any, aggregate: Aggregate | None = None
    ) -> dict[str, Any]:
        """While paused, install ``handover`` (an ``actors.shadow.Handover``) as the state and
        read and write snapshot generation ``generation`` from now on. Refuses unless the
        rebuild reflects exactly the events committed here (its position is the end of
        ``events[p]``). ``aggregate`` replaces this worker's (the code the rebuild ran)."""
        with self._held:
            if not (self._hold.is_set() and self._parked):
                raise RuntimeError(f"partition {self.partition}: switch only while paused")
        if (handover.partition, handover.generation) != (self.partition, generation):
            raise ValueError(
                f"a hand-over of partition {handover.partition} generation "
                f"{handover.generation}, not {self.partition} generation {generation}"
            )
        assert self._offsets is not None
        events = TopicPartition(self._topics[TopicKind.EVENTS], self.partition)
        _, end = watermarks(self._offsets, events)
        if handover.position != end:
            raise RuntimeError(
                f"partition {self.partition}: the rebuild reached events offset "
                f"{handover.position}, the events end at {end}"
            )
        aggregate = aggregate or self.aggregate
        store = SnapshotStore(aggregate)
        store.install(handover.snapshots.items())
        missing = sum(1 for aggregate_id in self._states if aggregate_id not in store)
        if missing:
            raise RuntimeError(f"{missing} aggregates exist here but not in the rebuild")
        self._write_checkpoint(
            self.layout.snapshots(generation), Checkpoint(self._next_offset, self._clock_ms)
        )
        self._states = store
        self.aggregate = aggregate
        self.generation = generation
        self._topics[TopicKind.SNAPSHOTS] = self.layout.snapshots(generation)
        log.info(
            "partition %d: switched to snapshot generation %d (%d aggregates)",
            self.partition,
            generation,
            len(store),
        )
        return {"generation": generation, "aggregates": len(store)}

    def _write_checkpoint(self, topic: str, checkpoint: Checkpoint) -> None:
        """Write a checkpoint to a snapshot generation in a transaction of its own: what only
        this actor knows (where commands resume, and the clock), so that a restart right after
        a switch (or an unblock) restores exactly this state and position."""
        producer = self._producer
        assert producer is not None
        self._call("begin", producer.begin_transaction)
        producer.produce(topic, encode_checkpoint(checkpoint), CHECKPOINT_KEY, self.partition)
        self._call("commit", producer.commit_transaction, 30)

    # -- an operator's way on from a blocked partition ---------------------------------------

    def unblock(self, from_offset: int | None = None) -> str:
        """Start a blocked partition again; with `from_offset`, commands resume there (the
        commands before it are never processed: the operator's decision, logged). Returns the
        new status. Raises ValueError unless blocked, or for an offset outside the log."""
        if self.status is not PartitionStatus.BLOCKED:
            raise ValueError(f"partition {self.partition} is {self.status}, not blocked")
        if from_offset is not None:
            self._producer = self._new_producer()
            probe = Consumer(consumer_config(self.settings, group_id=self.settings.app_id))
            try:
                low, high = watermarks(probe, self._commands)
            finally:
                probe.close()
            if not low <= from_offset <= high:
                raise ValueError(f"offset {from_offset} is outside commands[{self.partition}]: "
                                 f"{low} to {high}")  # fmt: skip
            log.warning(
                "partition %d: an operator moves the command position from %d to %d",
                self.partition,
                self._next_offset,
                from_offset,
            )
            self._write_checkpoint(
                self._topics[TopicKind.SNAPSHOTS], Checkpoint(from_offset, self._now_ms())
            )
            self._producer = None
        self.error = None
        self._aborts = AbortPolicy()
        self.start()
        return str(self.status)

    # -- queries (committed state only) ----------------------------------------------------

    def ready(self) -> str:
        """The status once the constructor has restored (Ray callers await this)."""
        return str(self.status)

    def get(self, aggregate_id: str) -> dict[str, Any] | None:
        """The public view of one aggregate as committed, or None."""
        slot = self._states.get(aggregate_id)
        if slot is None or slot.state is None:  # unknown, or only refused commands so far
            return None
        return msgspec.to_builtins(self.aggregate.view(slot.state))  # type: ignore[no-any-return]

    def views(self) -> dict[str, dict[str, Any]]:
        """Every aggregate's committed public view."""
        view = self.aggregate.view
        return {
            k: msgspec.to_builtins(view(s.state))
            for k, s in self._states.items()
            if s.state is not None
        }

    def stats(self) -> dict[str, Any]:
        """Counters, status and position, for ``status`` and the demo."""
        return {
            "partition": self.partition,
            "status": str(self.status),
            "error": self.error,
            "aggregates": len(self._states),
            "generation": self.generation,
            "paused": self._hold.is_set(),
            "rss_bytes": psutil.Process().memory_info().rss,
            "ids_disk_bytes": 0 if self._ids is None else self._ids.disk_bytes(),
            **asdict(self.counters),
        }
