"""What one partition has committed, as its worker knows it: the one object that holds it,
changed only through its own named methods.

Invariant: ``Committed`` is exactly the partition's committed state. Its state, command and
internal command offsets, clock, marks, flows, lost legs and commit sequence (``seq``) change
together, under one lock, and only from what Kafka holds: read back by a restore
(``restored``, then ``positioned``), written by a batch whose transaction committed
(``installed``), read by a standby's tail up to a checkpoint (``followed``), or sealed by a
generation's checkpoint (``switched``). The ends of the events log and of the replies
partitions only grow (``reached_events``, ``reached_reply``, from delivery reports).
Everything else only reads its attributes: the batch step, the queries, the checkpoints.
``seq`` only grows: +1 per committed batch, carried by every checkpoint; a read waits on
``changed`` (notified at every change) for the state to reach a version or position, and
reads under its lock never see a batch half installed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from topology.codec.aggregate import Codec
from topology.codec.keys import decode_key
from topology.deadlines import Deadlines
from topology.envelopes import Checkpoint, Position, Slot
from topology.flows import Flows
from topology.moves import SlotRecord
from topology.protocol import AnyAggregate
from topology.routing import RoutingTable
from topology.step.records import BatchResult
from topology.store import SnapshotStore
from topology.topics import TopicKind

__all__ = ["Clock", "Committed", "wall_ms"]

Clock = Callable[[], int]
"""Epoch milliseconds: the wall (``wall_ms``), or a clock a test steps past a window."""


def wall_ms() -> int:
    """The wall clock, in epoch milliseconds."""
    return int(time.time() * 1000)


class Committed:
    """The aggregate code and snapshot generation a partition serves, the topics it writes,
    its state (and the state's deadlines), where its commands and internal commands resume,
    its clock, and how far the events log and each replies partition reach. ``clock`` is the
    time the partition reads (the idempotency window and deadlines are judged by it)."""

    def __init__(
        self,
        codec: Codec,
        generation: int,
        topics: dict[TopicKind, str],
        states: SnapshotStore,
        *,
        clock: Clock = wall_ms,
    ) -> None:
        self.codec = codec
        self.clock = clock
        self.generation = generation
        self.topics = topics
        self.states = states
        self.deadlines = Deadlines(codec.aggregate)
        self.next_offset = 0
        self.internal_offset = 0
        self.clock_ms = 0  # the largest batch time committed: never runs backwards
        self.events_end = 0
        self.reply_ends: dict[int, int] = {}  # replies partition → next offset
        # replies partition → (id key of the last remembered reply written there, batch time)
        self.marks: dict[int, tuple[bytes, int]] = {}
        self.flows: Flows | None = None  # the partition's money flows (a tallied aggregate)
        self.lost: frozenset[bytes] = frozenset()  # id keys of legs set aside, not settled yet
        self.seq = 0  # the commit sequence: batches committed (Checkpoint.seq)
        self.slot_record: SlotRecord | None = None  # the latest committed one (None: none)
        self.routing: RoutingTable | None = None  # the published routing table (None: none)
        self._initial: SlotRecord | None = None  # `slots` without a record: of `routing`
        self.changed = threading.Condition()  # held by every change, notified after it

    # -- reads -----------------------------------------------------------------------------

    @property
    def aggregate(self) -> AnyAggregate:
        return self.codec.aggregate

    def due(self, now_ms: int) -> list[str]:
        """The aggregates with a deadline due at `now_ms`."""
        return self.deadlines.due(now_ms)

    def now_ms(self) -> int:
        """The partition's clock: ``clock()``, but never behind a batch already committed."""
        return max(self.clock(), self.clock_ms)

    def slots(self, partition: int) -> SlotRecord | None:
        """What partition `partition` (this one) owns: its slot record; with none, its
        slots in the published table (it never moved one, so the table names exactly its
        original slots); with neither, None (the application has no slots)."""
        if self.slot_record is not None:
            return self.slot_record
        if self.routing is None:
            return None
        initial = self._initial
        if initial is None or initial.table is not self.routing:  # made once per table
            initial = self._initial = SlotRecord.initial(partition, self.routing)
        return initial

    @property
    def next_seq(self) -> int:
        """The commit sequence once the next batch commits."""
        return self.seq + 1

    def at(self, partition: int) -> Position:
        """Where partition ``partition`` (this one) stands: its committed commit sequence."""
        return Position(partition, self.seq)

    def checkpoint(self, result: BatchResult, now_ms: int) -> Checkpoint:
        """The checkpoint of `result`: where commands resume, the clock, the marks with
        this batch's last remembered replies, and the next commit sequence (see
        `Checkpoint`)."""
        marks = {**self.marks, **{p: (k, now_ms) for p, k in result.last_remembered.items()}}
        flows = self.flows if result.flows is None else result.flows
        lost = self.lost if result.lost is None else result.lost
        return Checkpoint(
            result.next_offset,
            now_ms,
            marks,
            result.next_internal_offset,
            flows,
            lost,
            self.next_seq,
        )

    def position(self) -> Checkpoint:
        """The checkpoint of what is committed now (a generation's seal, an unblock): it
        commits no batch, so it keeps the commit sequence."""
        return Checkpoint(
            self.next_offset,
            self.clock_ms,
            self.marks,
            self.internal_offset,
            self.flows,
            self.lost,
            self.seq,
        )

    # -- the changes -----------------------------------------------------------------------

    def restored(
        self,
        states: SnapshotStore,
        events_end: int,
        checkpoint: Checkpoint | None,
        slot_record: SlotRecord | None = None,
    ) -> None:
        """A restore read ``states``, ``checkpoint`` (None: nothing was committed to this
        generation yet) and ``slot_record`` (None: none) back from the snapshots, and the
        events log's end."""
        with self.changed:
            self.states, self.events_end = states, events_end
            self.slot_record = slot_record
            self.deadlines = Deadlines(self.aggregate)
            self.deadlines.rebuild(states)
            if checkpoint is not None:
                self.clock_ms = max(self.clock_ms, checkpoint.clock_ms)
                self._carry(checkpoint)
            self.changed.notify_all()

    def positioned(self, next_offset: int, internal_offset: int) -> None:
        """After a restore: where the commands and internal commands resume."""
        self.next_offset, self.internal_offset = next_offset, internal_offset

    def installed(self, result: BatchResult, checkpoint: Checkpoint, now_ms: int) -> None:
        """The transaction of ``result`` (checkpointed as ``checkpoint`` at ``now_ms``)
        committed: its snapshots become the state (and its deadlines; the aggregates it handed
        off leave both), its offsets and clock the partition's, its commit sequence the
        partition's position, its slot record (if it made a move) the partition's."""
        with self.changed:
            self.states.install((r.key, r.value) for r in result.snapshots)
            self.deadlines.update(result.changed.items())
            self.deadlines.update((a, Slot(None, 0)) for a in result.departed)
            if result.slot_record is not None:
                self.slot_record = result.slot_record
            self.next_offset = result.next_offset
            self.internal_offset = result.next_internal_offset
            self.clock_ms = now_ms
            self._carry(checkpoint)
            self.changed.notify_all()

    def followed(
        self,
        records: Sequence[tuple[bytes, bytes | None]],
        checkpoint: Checkpoint,
        slot_record: SlotRecord | None = None,
    ) -> None:
        """A standby's tail read one committed batch of ``snapshots[p]``: its snapshot
        ``records`` (key, value; None: a tombstone), its ``slot_record`` (None: the batch
        made no move) and, after them, its ``checkpoint``. They become the state (and its
        deadlines), slot record, offsets, clock and position, together."""
        with self.changed:
            if slot_record is not None:
                self.slot_record = slot_record
            self.states.install(records)
            get = self.states.get
            ids = {decode_key(k) for k, _ in records}
            self.deadlines.update((a, get(a) or Slot(None, 0)) for a in ids)
            self.next_offset = checkpoint.next_offset
            self.internal_offset = checkpoint.internal_offset
            self.clock_ms = max(self.clock_ms, checkpoint.clock_ms)
            self._carry(checkpoint)
            self.changed.notify_all()

    def _carry(self, checkpoint: Checkpoint) -> None:
        """What every committed checkpoint hands on whole: the id memory's marks, the money
        flows, the lost legs and the commit sequence (the caller holds ``changed``)."""
        self.marks = dict(checkpoint.remembered)
        self.flows = checkpoint.flows
        self.lost = checkpoint.lost
        self.seq = checkpoint.seq

    def reached_events(self, end: int) -> None:
        """The events log holds a record of this partition below offset ``end``."""
        self.events_end = max(self.events_end, end)

    def reached_reply(self, partition: int, end: int) -> None:
        """Replies partition ``partition`` holds a reply of this partition below ``end``."""
        self.reply_ends[partition] = max(self.reply_ends.get(partition, 0), end)

    def switched(
        self, states: SnapshotStore, codec: Codec, generation: int, snapshots_topic: str
    ) -> None:
        """A rebuilt generation (``states``, built by ``codec``) was installed, its
        checkpoint written to ``snapshots_topic``: the partition serves it from now on, at
        the same commit sequence (the checkpoint kept it)."""
        with self.changed:
            self.states, self.codec, self.generation = states, codec, generation
            self.deadlines = Deadlines(codec.aggregate)
            self.deadlines.rebuild(states)
            self.topics[TopicKind.SNAPSHOTS] = snapshots_topic
            self.changed.notify_all()
