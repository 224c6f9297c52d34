"""The single writer of one partition: restore, then poll → commit one batch per transaction.

``PartitionWorker`` is a plain class (usable without Ray); the coordinator's supervisor wraps
it in ``ray.remote`` with names and restart options. It keeps the loop, the lifecycle and the
queries; a batch's transaction is ``actors.commit.BatchCommit``'s, the pause and the switch
of generation are ``actors.generations.Switcher``'s, and what it has committed is
``actors.committed.Committed`` (which changes only through its own methods). Invariants:

- the in-memory state is exactly the state committed to Kafka (see ``actors.committed``);
- the constructor fences any predecessor (``init_transactions`` on the partition's
  transactional id) and restores, so a restarted actor is whole before it serves a query;
- it reads and writes one snapshot generation (``TopicLayout.snapshots``); with
  ``generation=None`` it follows the coordinator's desired state (generation and paused flag
  from the control topic), also across Ray's restarts; snapshots of another state schema are
  never loaded: the state is then rebuilt from the events;
- between ``pause`` and ``resume`` it takes no command, so ``switch_generation`` installs a
  rebuilt generation that reflects exactly the events it committed;
- once the application has slots, the loop builds the slot indexes a handoff reads between
  batches, a bounded step at a time (``actors.slotindex``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import msgspec
import psutil
from confluent_kafka import Consumer, TopicPartition

from actors import tracing
from actors.commit import BatchCommit, PartitionBlockedError
from actors.committed import Clock, Committed, wall_ms
from actors.generations import Switcher, outside_the_log, reposition
from actors.idstore import IdStore
from actors.kafka import FatalError, FencedError
from actors.messages import Counters, PartitionStats, PartitionStatus, Paused, ServedBy, Switched
from actors.metrics import PartitionMetrics
from actors.opening import Opened, open_partition
from actors.records import OutsideTheLogError, poll_batch
from actors.routes import Routes
from actors.slotindex import index_slots
from actors.transactional import TransactionalWriter
from actors.views import MemberViews
from actors.watermarks import watermarks
from topology.aborts import AbortPolicy
from topology.codec.aggregate import Codec
from topology.moves import encode_slot_record
from topology.names import Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.store import SnapshotStore
from topology.topics import TopicKind, TopicLayout

if TYPE_CHECKING:
    from actors.shadow import Handover

__all__ = ["PartitionWorker"]

log = logging.getLogger(__name__)

_RESTARTS = 3


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


class PartitionWorker(MemberViews):
    """Owns partition ``partition`` of the application in ``settings``, running ``aggregate``;
    ``clock`` is the partition's time (the idempotency window and deadlines are judged by it).
    Its queries are ``MemberViews``'."""

    served_by = ServedBy.WRITER

    def __init__(
        self,
        settings: Settings,
        partition: int,
        aggregate: AnyAggregate,
        *,
        generation: int | None = 0,
        start: bool = True,
        clock: Clock = wall_ms,
        member: int = 0,
        committed: Committed | None = None,
        routes: Routes | None = None,
    ) -> None:
        paused = False
        routing = None
        if generation is None:  # the coordinator's actor: follow the desired state
            from actors.control_store import read_desired

            desired = read_desired(settings)
            record = desired.partition(partition)
            generation, paused = record.generation, record.paused
            routing = desired.table()
        self.settings, self.partition, self.member = settings, partition, member
        self.routes = routes
        self.names, self.layout = Names.of(settings), TopicLayout.of(settings)
        self.status = PartitionStatus.STOPPED
        self.error: str | None = None
        self.counters = Counters()
        topics = {kind: self.layout.name(kind) for kind in TopicKind}
        topics[TopicKind.SNAPSHOTS] = self.layout.snapshots(generation)
        codec = Codec(aggregate)
        self.committed = committed or Committed(
            codec, generation, topics, SnapshotStore(codec), clock=clock
        )
        if routing is not None:
            self.committed.routing = routing
        self._commands = TopicPartition(topics[TopicKind.COMMANDS], partition)
        self._internal = TopicPartition(topics[TopicKind.INTERNAL], partition)
        self._aborts = AbortPolicy()
        self._stop = threading.Event()
        self._switcher = Switcher(settings, partition, self.committed, held=paused)
        self._thread: threading.Thread | None = None
        self._writer: TransactionalWriter | None = None
        self._batch: BatchCommit | None = None
        self._ids: IdStore | None = None
        self._consumer: Consumer | None = None
        tracing.configure_telemetry("eventledger")
        _configure_logging(os.environ.get("EVENTLEDGER_LOG_LEVEL", ""))
        self.metrics = PartitionMetrics(settings.app_id, partition)
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, opened: Opened | None = None) -> None:
        """Fence the predecessor, restore, position the consumer, start the loop thread
        (unless the partition is blocked: then its status says why and how to go on). With
        ``opened``, a takeover's clients: the state is ``committed``'s as handed over."""
        self._stop.clear()
        try:
            self._open(opened)
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
            self._move(PartitionStatus.STOPPED)
        tracing.flush()  # the actor may be killed next: export what is buffered now

    def _open(self, opened: Opened | None = None) -> None:
        """Fence, restore, assign the consumer: whole or not at all. On any failure the
        clients are closed, the status is FAILED with the reason and the loop is told to stop
        (the supervisor replaces a FAILED actor; nothing polls an unassigned consumer)."""
        self._move(PartitionStatus.RESTORING)
        try:
            self._open_clients(opened)
        except PartitionBlockedError:
            self._close()  # the caller records why (BLOCKED) and waits for `unblock`
            raise
        except FencedError as e:
            self._close()
            self._move(PartitionStatus.FENCED, str(e))
            self._stop.set()
            raise
        except Exception as e:
            self._close()
            self._move(PartitionStatus.FAILED, f"opening: {type(e).__name__}: {e}")
            self._stop.set()
            log.error("partition %d: %s", self.partition, self.error)
            raise
        self._move(PartitionStatus.RUNNING)
        c = self.committed
        log.info(
            "partition %d running from command offset %d with %d aggregates",
            self.partition,
            c.next_offset,
            len(c.states),
        )

    def _open_clients(self, opened: Opened | None) -> None:
        if opened is None:
            opened = open_partition(
                self.settings,
                self.partition,
                self.committed,
                self.counters,
                self.metrics,
                member=self.member,
            )
        self._writer, self._ids, self._consumer = opened.writer, opened.ids, opened.consumer
        self._batch = BatchCommit(
            self.settings,
            self.partition,
            self.committed,
            writer=opened.writer,
            ids=opened.ids,
            counters=self.counters,
            metrics=self.metrics,
            aborts=self._aborts,
            rewind=self._rewind,
            wait=self._stop.wait,
            routes=self.routes,
        )
        self._batch.error = self.error  # aborts in a row outlive a re-creation

    def _rewind(self, offset: int, internal_offset: int) -> None:
        assert self._consumer is not None
        self._consumer.seek(TopicPartition(self._commands.topic, self.partition, offset))
        self._consumer.seek(TopicPartition(self._internal.topic, self.partition, internal_offset))

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._switcher.close()
        if self._ids is not None:
            self._ids.close()
            self._ids = None
        if self._writer is not None:
            self._writer.close()
        self._writer = self._batch = None

    def _move(self, status: PartitionStatus, *error: str) -> None:
        """A declared move of the status; the error is kept unless a new one is given."""
        self.status = self.status.move(status)
        if error:
            self.error = error[0]

    def _fail(self, status: PartitionStatus, message: str) -> None:
        log.error("partition %d %s: %s", self.partition, status, message)
        self._move(status, message)
        self._close()

    def _outside(self, low: int, high: int) -> str:
        return outside_the_log(self.settings, self.partition, self.committed.next_offset, low, high)

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        restarts = 0
        while not self._stop.is_set():
            if self._switcher.gate.hold_here():
                continue
            try:
                batch = self._poll_batch()
                if batch or self.committed.due(self.committed.now_ms()):  # none: a tick
                    assert self._batch is not None
                    self._batch.run(batch)
                    self.error = self._batch.error
                index_slots(self.committed, self._ids, self.routes)
                restarts = 0
            except FencedError as e:
                return self._fail(PartitionStatus.FENCED, str(e))
            except PartitionBlockedError as e:
                return self._fail(PartitionStatus.BLOCKED, str(e))
            except FatalError as e:
                restarts += 1
                if restarts > _RESTARTS:
                    return self._fail(PartitionStatus.FAILED, str(e))
                log.warning("partition %d: %s; re-creating the producer", self.partition, e)
                self.counters.producer_restarts += 1
                self._close()
                try:
                    self._open()
                except FencedError as fenced:
                    return self._fail(PartitionStatus.FENCED, str(fenced))
                except PartitionBlockedError as blocked:
                    return self._fail(PartitionStatus.BLOCKED, str(blocked))
                except Exception:  # _open recorded FAILED and stopped the loop
                    log.exception("partition %d: reopening failed", self.partition)
                    return None
            except Exception as e:
                log.exception("partition %d stopped", self.partition)
                return self._fail(PartitionStatus.FAILED, f"{type(e).__name__}: {e}")
        return None

    def _poll_batch(self) -> list[Any]:
        assert self._consumer is not None
        limit = self._aborts.batch_limit(self.settings.batch_max_commands)
        try:
            return poll_batch(self._consumer, limit, self.settings.batch_max_ms / 1000.0)
        except OutsideTheLogError:
            low, high = watermarks(self._consumer, self._internal)
            c = self.committed
            if not low <= c.internal_offset <= high:
                raise PartitionBlockedError(
                    outside_the_log(
                        self.settings,
                        self.partition,
                        c.internal_offset,
                        low,
                        high,
                        topic=self._internal.topic,
                    )
                ) from None
            raise PartitionBlockedError(
                self._outside(*watermarks(self._consumer, self._commands))
            ) from None

    # -- the moves others make: pause, switch, resume (a rebuild); unblock (an operator) -----

    @property
    def generation(self) -> int:
        return self.committed.generation

    def pause(self, timeout: float = 30.0) -> Paused:
        """Stop taking commands once the batch in flight is committed (or aborted); returns
        when the loop holds. Raises if the loop does not hold in time or has stopped."""
        thread = self._thread
        self._switcher.pause(timeout, lambda: thread is None or not thread.is_alive())
        if self.status is not PartitionStatus.RUNNING:
            raise RuntimeError(f"partition {self.partition} is {self.status}: {self.error}")
        return Paused(self.committed.next_offset, self.generation, self.committed.events_end)

    def resume(self, generation: int | None = None) -> None:
        """Take commands again; with ``generation``, only if this actor serves that snapshot
        generation (raises GenerationMismatchError and stays paused otherwise: an actor that
        restarted before its switch was recorded must be replaced, not resumed)."""
        self._switcher.resume(generation)

    def switch_generation(
        self, generation: int, handover: Handover, aggregate: AnyAggregate | None = None
    ) -> Switched:
        """While paused, install ``handover`` as the state and read and write snapshot
        generation ``generation`` from now on (``Switcher.switch``). ``aggregate`` replaces
        this worker's (the code the rebuild ran)."""
        return self._switcher.switch(generation, handover, aggregate, self._writer)

    def unblock(self, from_offset: int | None = None) -> str:
        """Start a blocked partition again; with `from_offset`, commands resume there (the
        commands before it are never processed: the operator's decision, logged). Returns the
        new status. Raises ValueError unless blocked, or for an offset outside the log."""
        if self.status is not PartitionStatus.BLOCKED:
            raise ValueError(f"partition {self.partition} is {self.status}, not blocked")
        if from_offset is not None:
            reposition(self.settings, self.committed, self.partition, from_offset)
        self.error = None
        self._aborts = AbortPolicy()
        self.start()
        return str(self.status)

    # -- queries (committed state only) ----------------------------------------------------

    def ready(self) -> str:
        """The status once the constructor has restored (Ray callers await this)."""
        return str(self.status)

    def stats(self) -> PartitionStats:
        """Status, position and counters, for ``status``, the coordinator and the bench."""
        slots = self.committed.slot_record
        return PartitionStats(
            partition=self.partition,
            status=self.status,
            error=self.error,
            aggregates=len(self.committed.states),
            generation=self.generation,
            paused=self._switcher.gate.requested,
            rss_bytes=psutil.Process().memory_info().rss,
            ids_disk_bytes=0 if self._ids is None else self._ids.disk_bytes(),
            member=self.member,
            seq=self.committed.seq,
            slot_record=None if slots is None else encode_slot_record(slots),
            **(
                msgspec.structs.asdict(self.counters)
                | {"move_pauses_ms": dict(self.counters.move_pauses_ms)}
            ),
        )
