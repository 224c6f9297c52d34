"""The moves others make on a partition: pause and resume (the ``Gate``), switch to a
rebuilt snapshot generation (the coordinator's rebuild; both ``Switcher``'s), and the
operator's way on from a blocked partition (``reposition``: where commands resume).

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

from actors.commit import write_checkpoint
from actors.committed import Committed
from actors.kafka import consumer_config
from actors.messages import Switched
from actors.transactional import TransactionalWriter
from actors.watermarks import watermarks
from topology.codec.aggregate import Codec
from topology.envelopes import Checkpoint
from topology.names import Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.store import SnapshotStore
from topology.topics import TopicKind, TopicLayout

if TYPE_CHECKING:
    from actors.shadow import Handover

__all__ = [
    "Gate",
    "GenerationMismatchError",
    "Switcher",
    "checked_handover",
    "outside_the_log",
    "reposition",
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
    committed_end: int,
    states: SnapshotStore,
    store: SnapshotStore,
) -> SnapshotStore:
    """``store`` (the hand-over installed), after checking it is the rebuild of this
    partition and generation up to ``events_end`` (the log's end now), which must reach
    ``committed_end`` (the end of the events the partition committed: a read of the end
    made before a commit's markers landed lies below it), with every aggregate in
    ``states``."""
    if (handover.partition, handover.generation) != (partition, generation):
        raise ValueError(
            f"a hand-over of partition {handover.partition} generation "
            f"{handover.generation}, not {partition} generation {generation}"
        )
    if handover.position < committed_end:
        raise RuntimeError(
            f"partition {partition}: the rebuild reached events offset "
            f"{handover.position}, below the {committed_end} its batches committed"
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
        committed.seq,
    )
    write_checkpoint(writer, topics[TopicKind.SNAPSHOTS], partition, checkpoint)
    writer.close()


class Switcher:
    """Pauses a partition's loop and, while it holds, switches the partition to a rebuilt
    snapshot generation. It owns the pause handshake (``gate``: the loop consults it between
    batches) and the consumer that reads the events log's end for a switch; the partition's
    committed state changes only through ``Committed.switched``."""

    def __init__(
        self, settings: Settings, partition: int, committed: Committed, *, held: bool = False
    ) -> None:
        self.settings, self.partition, self.committed = settings, partition, committed
        self.gate = Gate(held=held)
        self._offsets: Consumer | None = None  # unassigned: offset queries during a switch

    def pause(self, timeout: float, loop_gone: Callable[[], bool]) -> None:
        """Ask the loop to hold once its batch in flight has ended; raises TimeoutError
        unless it holds (or has gone: ``loop_gone``) within ``timeout`` seconds."""
        if self._offsets is None:  # ready before the switch that follows the pause
            group = Names.of(self.settings).group("offsets")
            self._offsets = Consumer(consumer_config(self.settings, group_id=group))
        if not self.gate.request(timeout, loop_gone):
            raise TimeoutError(f"partition {self.partition} did not pause in {timeout:.0f}s")

    def resume(self, generation: int | None = None) -> None:
        """Lift the pause; with ``generation``, only if the partition serves that snapshot
        generation (raises GenerationMismatchError and stays paused otherwise)."""
        served = self.committed.generation
        if generation is not None and generation != served:
            raise GenerationMismatchError(
                f"partition {self.partition} serves generation {served}, "
                f"not the desired {generation}: not resumed"
            )
        self.gate.lift()

    def switch(
        self,
        generation: int,
        handover: Handover,
        aggregate: AnyAggregate | None,
        writer: TransactionalWriter | None,
    ) -> Switched:
        """While parked, install ``handover`` as the state, which from now on reads and
        writes snapshot generation ``generation``, after its slot record and checkpoint are
        written there through ``writer``; ``aggregate`` (the code the rebuild ran) replaces the
        partition's. ``checked_handover`` says when a hand-over is refused."""
        if not self.gate.parked:
            raise RuntimeError(f"partition {self.partition}: switch only while paused")
        assert self._offsets is not None and writer is not None
        c, partition = self.committed, self.partition
        events = TopicPartition(c.topics[TopicKind.EVENTS], partition)
        _, end = watermarks(self._offsets, events)
        codec = c.codec if aggregate is None else Codec(aggregate)
        store = checked_handover(
            partition,
            generation,
            handover,
            events_end=end,
            committed_end=c.events_end,
            states=c.states,
            store=SnapshotStore(codec),
        )
        topic = TopicLayout.of(self.settings).snapshots(generation)
        write_checkpoint(writer, topic, partition, c.position(), slot_record=c.slot_record)
        c.switched(store, codec, generation, topic)
        log.info(
            "partition %d: switched to snapshot generation %d (%d aggregates)",
            partition,
            generation,
            len(store),
        )
        return Switched(generation, len(store))

    def close(self) -> None:
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None
