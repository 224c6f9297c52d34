"""The moves others make on a partition actor: pause and resume (the ``Gate``), switch to a
rebuilt snapshot generation (the coordinator's rebuild), and the operator's way on from a
blocked partition (where commands resume).

Invariants: between ``Gate.request`` and ``Gate.lift`` the loop takes no command once the
batch in flight has ended, and ``Gate.parked`` says it holds; a hand-over is installed only
while parked and only when it reflects exactly the events committed on the partition (its
position is the end of ``events[p]``) and holds every aggregate the partition holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, TopicPartition

from actors.commit import Committed, write_checkpoint
from actors.kafka import consumer_config
from actors.messages import PartitionStatus, Paused, Switched
from actors.transactional import TransactionalWriter
from actors.watermarks import watermarks
from topology.aborts import AbortPolicy
from topology.codec import Checkpoint, Codec
from topology.deadlines import Deadlines
from topology.names import Names
from topology.protocol import Aggregate
from topology.settings import Settings
from topology.store import SnapshotStore
from topology.topics import TopicKind, TopicLayout

if TYPE_CHECKING:
    from actors.shadow import Handover

__all__ = [
    "Gate",
    "GenerationMismatchError",
    "PartitionMoves",
    "checked_handover",
    "outside_the_log",
    "reposition",
    "switch",
]

log = logging.getLogger(__name__)


class GenerationMismatchError(RuntimeError):
    """The actor serves another snapshot generation than the one it was asked to serve."""


class Gate:
    """The pause handshake between callers and the partition's loop thread."""

    def __init__(self, *, held: bool = False) -> None:
        self._requested = threading.Event()
        self._cond = threading.Condition()
        self._parked = False  # the loop holds (no batch in flight); under _cond
        if held:
            self._requested.set()

    @property
    def requested(self) -> bool:
        """A pause is asked for (what ``stats`` reports as paused)."""
        return self._requested.is_set()

    @property
    def parked(self) -> bool:
        """The pause is asked for and the loop holds: a switch may run."""
        with self._cond:
            return self._requested.is_set() and self._parked

    def hold_here(self) -> bool:
        """The loop's side, between batches: True (after a short wait) while held; the
        request is checked and the loop marked parked together, under one lock."""
        with self._cond:
            if self._requested.is_set():
                self._parked = True
                self._cond.notify_all()
                self._cond.wait(0.05)
                return True
            self._parked = False
            return False

    def request(self, timeout: float, loop_gone: Callable[[], bool]) -> bool:
        """Ask the loop to hold; whether it did (or has gone) within ``timeout``."""
        with self._cond:
            self._requested.set()
            return self._cond.wait_for(lambda: self._parked or loop_gone(), timeout)

    def lift(self) -> None:
        with self._cond:
            self._requested.clear()
            self._cond.notify_all()


def checked_handover(
    partition: int,
    generation: int,
    handover: Handover,
    *,
    events_end: int,
    states: SnapshotStore,
    store: SnapshotStore,
) -> SnapshotStore:
    """``store`` (the hand-over installed), after checking it is the rebuild of this
    partition and generation up to ``events_end`` with every aggregate in ``states``."""
    if (handover.partition, handover.generation) != (partition, generation):
        raise ValueError(
            f"a hand-over of partition {handover.partition} generation "
            f"{handover.generation}, not {partition} generation {generation}"
        )
    if handover.position != events_end:
        raise RuntimeError(
            f"partition {partition}: the rebuild reached events offset "
            f"{handover.position}, the events end at {events_end}"
        )
    store.install(handover.snapshots.items())
    missing = sum(1 for aggregate_id in states if aggregate_id not in store)
    if missing:
        raise RuntimeError(f"{missing} aggregates exist here but not in the rebuild")
    return store


def outside_the_log(
    settings: Settings, partition: int, position: int, low: int, high: int, *, topic: str = ""
) -> str:
    """Why a partition whose commands (or, with ``topic``, the commands of that topic)
    resume at ``position`` is blocked, and how to go on."""
    what = topic or "commands"
    why = (
        "commands were deleted (retention) before they were processed"
        if position < low
        else f"the {what} topic was re-created or truncated"
    )
    if topic:
        return (
            f"{topic}[{partition}] resumes at offset {position} but holds offsets {low} to "
            f"{high}: {why}. The service's own commands are never skipped by itself: "
            "restore the topic, or re-create the application"
        )
    return (
        f"commands resume at offset {position}, but commands[{partition}] "
        f"holds offsets {low} to {high}: {why}. Nothing is skipped by itself: to go on "
        f"from offset N (between {low} and {high}), run `eventledger unblock --app "
        f"{settings.app_id} --partition {partition} --from-offset N`"
    )


def reposition(settings: Settings, committed: Committed, partition: int, from_offset: int) -> None:
    """An operator's decision, for a blocked partition: its commands resume at
    ``from_offset`` (the commands before it are never processed). Written as a checkpoint
    through a new writer of the partition (which fences any other); raises ValueError for an
    offset outside the commands log."""
    from actors.opening import new_writer

    topics = committed.topics
    writer = new_writer(settings, partition)
    commands = TopicPartition(topics[TopicKind.COMMANDS], partition)
    probe = Consumer(consumer_config(settings, group_id=Names.of(settings).commands_group))
    try:
        low, high = watermarks(probe, commands)
    finally:
        probe.close()
    if not low <= from_offset <= high:
        raise ValueError(f"offset {from_offset} is outside commands[{partition}]: {low} to {high}")
    log.warning(
        "partition %d: an operator moves the command position from %d to %d",
        partition,
        committed.next_offset,
        from_offset,
    )
    checkpoint = Checkpoint(
        from_offset,
        committed.now_ms(),
        committed.marks,
        committed.internal_offset,
        committed.flows,
        committed.lost,
    )
    write_checkpoint(writer, topics[TopicKind.SNAPSHOTS], partition, checkpoint)
    writer.close()


def switch(
    committed: Committed,
    partition: int,
    generation: int,
    handover: Handover,
    aggregate: Aggregate | None,
    *,
    writer: TransactionalWriter,
    offsets: Consumer,
    topic: str,
) -> Switched:
    """Install ``handover`` as ``committed``'s state, which from now on reads and writes
    snapshot generation ``generation`` (``topic``), after its checkpoint is written there;
    ``aggregate`` (the code the rebuild ran) replaces the partition's. Call only while the
    partition is parked."""
    c = committed
    _, end = watermarks(offsets, TopicPartition(c.topics[TopicKind.EVENTS], partition))
    codec = c.codec if aggregate is None else Codec(aggregate)
    store = checked_handover(
        partition,
        generation,
        handover,
        events_end=end,
        states=c.states,
        store=SnapshotStore(codec),
    )
    write_checkpoint(writer, topic, partition, c.position())
    c.states, c.codec, c.generation = store, codec, generation
    c.deadlines = Deadlines(codec.aggregate)
    c.deadlines.rebuild(store)
    c.topics[TopicKind.SNAPSHOTS] = topic
    log.info(
        "partition %d: switched to snapshot generation %d (%d aggregates)",
        partition,
        generation,
        len(store),
    )
    return Switched(generation, len(store))


class PartitionMoves:
    """The partition actor's methods for the moves above (``PartitionWorker`` inherits
    them, so Ray calls them on the actor); the attributes are the worker's."""

    settings: Settings
    partition: int
    layout: TopicLayout
    names: Names
    committed: Committed
    status: PartitionStatus
    error: str | None
    _gate: Gate
    _thread: threading.Thread | None
    _writer: TransactionalWriter | None
    _offsets: Consumer | None
    _aborts: AbortPolicy

    @property
    def generation(self) -> int:
        return self.committed.generation

    start: Callable[[], None]

    # -- pause, switch, resume (the coordinator's rebuild); unblock (an operator's) ----------

    def pause(self, timeout: float = 30.0) -> Paused:
        """Stop taking commands once the batch in flight is committed (or aborted); returns
        when the loop holds. Raises if the loop does not hold in time or has stopped."""
        if self._offsets is None:  # ready before the switch that follows the pause
            group = self.names.group("offsets")
            self._offsets = Consumer(consumer_config(self.settings, group_id=group))
        thread = self._thread
        if not self._gate.request(timeout, lambda: thread is None or not thread.is_alive()):
            raise TimeoutError(f"partition {self.partition} did not pause in {timeout:.0f}s")
        if self.status is not PartitionStatus.RUNNING:
            raise RuntimeError(f"partition {self.partition} is {self.status}: {self.error}")
        return Paused(self.committed.next_offset, self.generation)

    def resume(self, generation: int | None = None) -> None:
        """Take commands again; with ``generation``, only if this actor serves that snapshot
        generation (raises GenerationMismatchError and stays paused otherwise: an actor that
        restarted before its switch was recorded must be replaced, not resumed)."""
        if generation is not None and generation != self.generation:
            raise GenerationMismatchError(
                f"partition {self.partition} serves generation {self.generation}, "
                f"not the desired {generation}: not resumed"
            )
        self._gate.lift()

    def switch_generation(
        self, generation: int, handover: Handover, aggregate: Aggregate | None = None
    ) -> Switched:
        """While paused, install ``handover`` as the state and read and write snapshot
        generation ``generation`` from now on
        (``actors.generations.checked_handover`` says when it is refused). ``aggregate``
        replaces this worker's (the code the rebuild ran)."""
        if not self._gate.parked:
            raise RuntimeError(f"partition {self.partition}: switch only while paused")
        assert self._offsets is not None and self._writer is not None
        return switch(
            self.committed,
            self.partition,
            generation,
            handover,
            aggregate,
            writer=self._writer,
            offsets=self._offsets,
            topic=self.layout.snapshots(generation),
        )

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
