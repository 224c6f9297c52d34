"""A shadow rebuild: fold ``events[p]`` from offset 0 into a new snapshot generation while
the live actor keeps serving, then hand the result over during a short pause.

``ShadowRebuild`` is a plain class (the coordinator runs it as the Ray actor
``{app}-rebuild-{p}``). Invariants:

- it only reads events (``read_committed``) and only writes the new generation's topic
  ``{app}.snapshots.g{n}``; the live actor's generation is untouched, so a rebuild that is
  abandoned at any point leaves the partition as it was;
- its checkpoints are transactions (``transactional.id = {app}-rebuild-{p}``): each one
  holds the snapshot of every aggregate changed since the previous one, stamped with the
  events offset the shadow had reached, so the largest stamp in the generation is a position
  from which a restarted shadow resumes (and a restarted shadow fences the old one);
- once its partition has switched, the coordinator retires it and fences its id
  (``fence_rebuild``), so no shadow producer can write into a live generation;
- ``finish`` is called only while the live actor is paused: it replays the tail to the end
  of ``events[p]``, writes the last checkpoint and returns the slots, so the generation and
  the hand-over both reflect exactly the events the live actor had committed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from actors.kafka import consumer_config
from actors.logs import timestamped
from actors.messages import ShadowPhase, ShadowProgress
from actors.replay import EventTail, fold
from actors.scan import scan_partition
from actors.transactional import TransactionalWriter
from topology.codec.aggregate import Codec
from topology.codec.keys import encode_key
from topology.codec.wire import CodecError
from topology.envelopes import Slot
from topology.names import Names
from topology.protocol import AnyAggregate
from topology.restore import TailEnd, resume_rebuild
from topology.settings import Settings
from topology.topics import TopicLayout

__all__ = ["Handover", "ShadowRebuild", "fence_rebuild"]

log = logging.getLogger(__name__)


_CAUGHT_UP_CHECKPOINT_SECONDS = 0.2
"""At the end of the log, checkpoint this often: the last checkpoint, written during the
switch's pause, then holds only the aggregates changed in the last moments."""


def fence_rebuild(settings: Settings, partition: int) -> None:
    """Fence every producer a shadow of ``partition`` ever had (a retired shadow, or one Ray
    lost track of), so that none can write to a generation once it is live."""
    writer = TransactionalWriter(settings, Names.of(settings).shadow_txn(partition))
    writer.open()  # init_transactions bumps the id's epoch
    writer.close()


@dataclass(frozen=True)
class Handover:
    """The rebuilt state of one partition as of ``position`` (every event below that offset
    of ``events[partition]`` is folded in): ``snapshots`` maps each aggregate's record key
    to its encoded snapshot, exactly the records of ``generation`` on Kafka, so the actor
    installs them as a restore from that generation would, without reading the topic."""

    partition: int
    generation: int
    position: int
    snapshots: dict[bytes, bytes]
    replayed: int
    seconds: float


class ShadowRebuild:
    """Rebuilds partition ``partition`` into snapshot generation ``generation``."""

    def __init__(
        self,
        settings: Settings,
        partition: int,
        generation: int,
        aggregate: AnyAggregate,
        *,
        checkpoint_seconds: float = 2.0,
        checkpoint_records: int = 50_000,
        read_limit: int = 10_000,
        start: bool = True,
    ) -> None:
        timestamped()
        if generation < 1:
            raise ValueError(f"a rebuild writes generation >= 1, got {generation}")
        self.settings = settings
        self.partition = partition
        self.generation = generation
        self.aggregate = aggregate
        self.codec = Codec(aggregate)
        self.checkpoint_seconds = checkpoint_seconds
        self.checkpoint_records = checkpoint_records
        self.read_limit = read_limit
        self.topic = TopicLayout.of(settings).snapshots(generation)
        self.phase = ShadowPhase.RESUMING
        self.error: str | None = None
        self.states: dict[str, Slot] = {}
        self.encoded: dict[bytes, bytes] = {}
        self.finish_steps_ms: dict[str, float] = {}
        self.resumed_from = 0
        self.replayed = 0
        self.end = 0
        self.started_at = time.monotonic()
        self.replay_seconds = 0.0
        self._changed: set[str] = set()
        self._last_checkpoint = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer = TransactionalWriter(
            settings, Names.of(settings).shadow_txn(partition), end_timeout=60.0
        )
        self._writer.open()  # fences an earlier shadow of this partition before resuming
        self.resumed_from = self._resume()
        self._tail = EventTail(settings, partition, self.resumed_from)
        self.end = self._tail.end()
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.phase = self.phase.move(ShadowPhase.REPLAYING)
        self.started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"rebuild-{self.partition}", daemon=True
        )
        self._thread.start()

    def _resume(self) -> int:
        """Load what an earlier attempt checkpointed into this generation; the position to
        resume from (0 when there is nothing usable: a fresh start)."""
        consumer = Consumer(
            consumer_config(
                self.settings,
                group_id=Names.of(self.settings).group("rebuild"),
                **{"enable.partition.eof": True, "fetch.wait.max.ms": 20},
            )
        )
        try:
            resumed = resume_rebuild(
                self.codec,
                (
                    (m.key(), m.value())
                    for m in scan_partition(consumer, TopicPartition(self.topic, self.partition))
                ),
            )
        except CodecError as e:
            log.warning(
                "partition %d: generation %d holds unusable snapshots (%s); starting over",
                self.partition,
                self.generation,
                e,
            )
            return 0
        finally:
            consumer.close()
        self.states = resumed.states
        self.encoded = resumed.encoded
        log.info(
            "partition %d: resuming rebuild into generation %d at events offset %d (%d aggregates)",
            self.partition,
            self.generation,
            resumed.position,
            len(resumed.states),
        )
        return resumed.position

    # -- replay ----------------------------------------------------------------------------

    def _run(self) -> None:
        """Replay and checkpoint until stopped. ``replay_seconds`` counts the busy time only
        (not the waits at the end of the log), so replayed / replay_seconds is the rate."""
        refreshed = 0.0
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                applied = self.replay_some()
                if began - refreshed > 0.25:
                    self.end = max(self.end, self._tail.end())
                    refreshed = began
                caught_up = self._tail.at_end and self._tail.position >= self.end
                since = began - self._last_checkpoint
                if self._changed and (
                    since > self.checkpoint_seconds
                    or len(self._changed) >= self.checkpoint_records
                    or (caught_up and since > _CAUGHT_UP_CHECKPOINT_SECONDS)
                ):
                    self.checkpoint()
                if applied or not caught_up:
                    self.replay_seconds += time.monotonic() - began
                if caught_up:
                    self.phase = self.phase.move(ShadowPhase.CAUGHT_UP)
                    self._stop.wait(0.005)
                else:
                    self.phase = self.phase.move(ShadowPhase.REPLAYING)
        except Exception as e:
            self.phase = self.phase.move(ShadowPhase.FAILED)
            self.error = f"{type(e).__name__}: {e}"
            log.exception("partition %d: rebuild failed", self.partition)

    def replay_some(self) -> int:
        """Fold the next records (at most ``read_limit``); returns how many were applied."""
        records = self._tail.read(self.read_limit, timeout=0.01)
        applied = fold(self.codec, self.states, records, self._changed)
        self.replayed += applied
        return applied

    def checkpoint(self) -> None:
        """One transaction: the snapshot of every aggregate changed since the last one,
        stamped with the position reached."""
        position = self._tail.position
        writer = self._writer
        written: dict[bytes, bytes | None] = {}
        with writer.transaction():
            for aggregate_id in self._changed:
                slot = self.states.get(aggregate_id)
                if slot is None:  # departed in a repartition: a tombstone
                    key, value = encode_key(aggregate_id), None
                else:
                    key, value = self.codec.snapshots.record(aggregate_id, slot, position)
                writer.produce(self.topic, value, key, self.partition)
                writer.poll(0)
                written[key] = value
        for key, value in written.items():  # committed: now part of the hand-over
            if value is None:
                self.encoded.pop(key, None)
            else:
                self.encoded[key] = value
        self._changed.clear()
        self._last_checkpoint = time.monotonic()

    # -- the coordinator's calls -----------------------------------------------------------

    def progress(self) -> ShadowProgress:
        """Where the rebuild is: phase, events offset reached and the partition's end."""
        return ShadowProgress(
            partition=self.partition,
            generation=self.generation,
            phase=self.phase,
            position=self._tail.position,
            end=self.end,
            resumed_from=self.resumed_from,
            replayed=self.replayed,
            seconds=self.replay_seconds,
            aggregates=len(self.states),
            error=self.error,
            aggregate=self.aggregate.name,
            finish_steps_ms=dict(self.finish_steps_ms),
            state_schema_version=self.aggregate.state_schema_version,
        )

    def finish(self, at_least: int = 0, timeout: float = 60.0) -> Handover:
        """Replay the tail to the end of ``events[p]``, and at least to offset ``at_least``
        (the live actor's ``Paused.events_end``: a batch it committed is not yet readable
        until Kafka writes its commit markers), checkpoint, return the slots as of where the
        tail stands at the end (``TailEnd``). Call only while the live actor is paused
        (nothing more is appended meanwhile). Raises TimeoutError rather than hand over
        less."""
        marks = [time.perf_counter()]
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("the replay thread did not stop")
        if self.phase is ShadowPhase.FAILED:
            raise RuntimeError(f"the rebuild failed: {self.error}")
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        marks.append(time.perf_counter())
        tail, target = self._tail, TailEnd(at_least)
        target.aim(tail.end())
        while not target.reached(tail.position, tail.at_end):
            if time.monotonic() > deadline:
                raise TimeoutError(f"tail not replayed: at {tail.position} of {target.end}")
            self.replay_some()
            if tail.at_end and not target.reached(tail.position, tail.at_end):
                target.aim(tail.end())
        end = tail.position
        marks.append(time.perf_counter())
        self.checkpoint()
        marks.append(time.perf_counter())
        self.finish_steps_ms = {
            step: round((marks[i + 1] - marks[i]) * 1000.0, 1)
            for i, step in enumerate(("stop", "tail", "checkpoint"))
        }
        self.end = end
        self.phase = self.phase.move(ShadowPhase.FINISHED)
        self.replay_seconds += time.monotonic() - started
        log.info(
            "partition %d: rebuilt %d aggregates into generation %d up to events offset %d",
            self.partition,
            len(self.states),
            self.generation,
            end,
        )
        return Handover(
            partition=self.partition,
            generation=self.generation,
            position=end,
            snapshots=self.encoded,
            replayed=self.replayed,
            seconds=self.replay_seconds,
        )

    def stop(self) -> None:
        """Stop replaying and close the clients (the checkpoints stay for a resume)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        self._tail.close()
        self._writer.close()
