"""One partition's worker in the simulator: the actor's restore and batch loop, with the
real pure code (the batch step, the restore folds, the snapshot store, the deadlines) and
the in-memory logs in place of Kafka.

Invariants (the actor's, `actors.commit`): a batch becomes the state, the id
memory, the offsets and the clock only after its transaction commits; a crash loses what
is in memory, and the restore reads back exactly what was committed (the snapshots to their
end, the last checkpoint, the id memory's changelog).

(Over 400 lines: restore, batch, commit and install are one worker, as `actors.commit`
is one loop; split, each half would reach into the other's fields.)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from eventledger.sim.logs import Logs, Transaction
from eventledger.sim.readback import read_back
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY, encode_checkpoint
from topology.codec.replies import decode_entry
from topology.codec.state import encode_flows
from topology.deadlines import Deadlines
from topology.envelopes import Checkpoint, Slot
from topology.flows import FLOWS_KEY, Flows
from topology.idempotency import entries_in_slots
from topology.limits import MAX_SNAPSHOT_BYTES
from topology.moves import (
    SLOT_RECORD_KEY,
    RecordKind,
    SlotRecord,
    encode_slot_record,
    record_kind,
)
from topology.routing import RoutingTable
from topology.step.aside import set_aside
from topology.step.batch import process_batch
from topology.step.records import BatchResult, InRecord, origin
from topology.store import SnapshotStore
from topology.topics import TopicKind

__all__ = ["MOVED_ENTRY", "Begun", "Fault", "Handover", "SimPartition", "StepReport"]

_INDEX_STEP = 1
"""Keys of the state's slot index a worker indexes before each batch, as the actor's loop
does between batches: few, so that handoffs meet builds under way; a constant, not drawn,
so that seeds replay as before."""

MOVED_ENTRY = ("eventledger-sim", b"moved-entry")
"""The simulator's own header on a replies record that an install wrote for an id entry
that moved with its account (`topology.step.moving`): clients do not take it for a reply."""


class Fault(StrEnum):
    """What goes wrong in one batch (`NONE`: nothing)."""

    NONE = "none"
    CRASH_BEFORE_COMMIT = "crash-before-commit"  # the transaction stays open, then is fenced
    ABORT = "abort"  # the transaction aborts; the worker rewinds and goes on
    CRASH_AFTER_COMMIT = "crash-after-commit"  # committed, then the worker dies uninstalled
    SET_ASIDE = "set-aside"  # the first record kept aborting: it is dead-lettered alone
    SET_ASIDE_LEG = "set-aside-leg"  # the same for the first internal command: a lost leg


@dataclass(frozen=True)
class StepReport:
    """What one batch did: its records and result (None: nothing to do, or not committed)."""

    records: Sequence[InRecord]
    result: BatchResult | None
    now_ms: int
    committed: bool
    partition: int = -1  # the partition whose batch it was


class Begun(NamedTuple):
    """A batch produced in an open transaction, not committed yet."""

    records: Sequence[InRecord]
    result: BatchResult
    now_ms: int
    txn: Transaction
    checkpoint: Checkpoint


class _Memory:
    """The id memory: remembered reply values by id key (the actor's RocksDB, in a dict)."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}

    def lookup(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self.values.get(k) for k in keys]

    def entries_in(
        self, slots: frozenset[int], slot_of: Callable[[bytes], int]
    ) -> list[tuple[bytes, bytes]]:
        return entries_in_slots(self.values.items(), slots, slot_of)


@dataclass(frozen=True)
class Handover:
    """What a promoted standby hands its writer: the producer epoch its fence began, its
    state at `checkpoint` (read to the end of the snapshots) and its id memory (read to the
    end of the replies)."""

    epoch: int
    states: SnapshotStore
    deadlines: Deadlines
    checkpoint: Checkpoint
    ids: dict[bytes, bytes]
    slot_record: SlotRecord | None = None


class SimPartition:
    """The worker of partition `partition`: restored from the logs when made, and after a
    crash; or, given a `handover`, a promoted standby's. `routing` is the published table
    it was last handed (None: the application has no slots); `slot_record` its committed
    one (None: none, it owns what `routing` gives it). With `move_guard` off, a handoff's
    new slot record is written but not adopted by the worker that made it (as if
    `Committed.installed` dropped it): the defect `--no-move-guard` plants."""

    def __init__(
        self,
        codec: Codec,
        logs: Logs,
        *,
        partition: int,
        partitions: int,
        reply_lanes: int,
        window_ms: int,
        max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES,
        handover: Handover | None = None,
        routing: RoutingTable | None = None,
        move_guard: bool = True,
    ) -> None:
        self.codec = codec
        self.logs = logs
        self.partition = partition
        self.partitions = partitions
        self.reply_lanes = reply_lanes
        self.window_ms = window_ms
        self.max_snapshot_bytes = max_snapshot_bytes
        self.restores = 0
        self.routing = routing
        self.move_guard = move_guard
        self.slot_record: SlotRecord | None = None
        if handover is None:
            self.restore(forget_before=None)
        else:  # a promoted standby: fenced already, caught up to the end
            self.epoch = handover.epoch
            self.ids = _Memory()
            self.ids.values = handover.ids
            self.slot_record = handover.slot_record
            self._adopt(handover.states, handover.checkpoint, handover.deadlines)

    # -- restore ------------------------------------------------------------------------------

    def restore(self, *, forget_before: int | None) -> None:
        """Fence (a new producer epoch: the open transaction of the one before is aborted),
        then read back what is committed: snapshots and the last checkpoint, then the id
        memory from its changelog (ids whose first attempt is before `forget_before` may be
        left out, as a new disk restores only the window)."""
        self.epoch = self.logs.init(self.partition)
        back = read_back(self.codec, self.logs, self.partition, self.reply_lanes)
        self.ids = _Memory()
        self.ids.values = back.ids
        self.slot_record = back.slot_record
        self._adopt(back.states, back.checkpoint)
        if forget_before is not None:
            self.forget(forget_before)
        self.restores += 1

    def _adopt(
        self, states: SnapshotStore, checkpoint: Checkpoint, deadlines: Deadlines | None = None
    ) -> None:
        """Stand at `checkpoint` with `states` and their `deadlines` (None: rebuilt from
        them); the id memory must hold the checkpoint's marks already."""
        for key, _ in checkpoint.remembered.values():
            if key not in self.ids.values:
                raise AssertionError(
                    f"partition {self.partition}: the id memory misses a checkpoint mark"
                )
        self.states = states
        # what a restore reads after its fence (`watermarks`): the events' last stable
        # offset; from then on, raised by each event written (its delivery report)
        self.events_end = self.logs.log(TopicKind.EVENTS, self.partition).stable_end()
        self.next_offset = checkpoint.next_offset
        self.internal_offset = checkpoint.internal_offset
        self.clock_ms = checkpoint.clock_ms
        self.marks = dict(checkpoint.remembered)
        self.flows: Flows | None = checkpoint.flows
        self.lost = checkpoint.lost
        self.seq = checkpoint.seq
        if deadlines is None:
            deadlines = Deadlines(self.codec.aggregate)
            deadlines.rebuild(states)
        self.deadlines = deadlines

    def checkpoint(self) -> Checkpoint:
        """The checkpoint of what this worker holds now (its last committed batch's)."""
        return Checkpoint(
            self.next_offset,
            self.clock_ms,
            self.marks,
            self.internal_offset,
            self.flows,
            self.lost,
            self.seq,
        )

    def slots(self) -> SlotRecord | None:
        """What this partition owns (`Committed.slots`): its slot record; with none, its
        slots in the published table; with neither, None."""
        if self.slot_record is not None:
            return self.slot_record
        return None if self.routing is None else SlotRecord.initial(self.partition, self.routing)

    def transaction(self) -> Transaction:
        """A transaction of this worker's producer (a fenced one's first write raises)."""
        return self.logs.transaction(self.partition, self.epoch)

    def forget(self, before_ms: int) -> int:
        """Drop the ids whose first attempt plus the window is before `before_ms` (what the
        memory's contract allows); how many were dropped."""
        old = [
            k
            for k, v in self.ids.values.items()
            if decode_entry(v).first_attempt_ms + self.window_ms < before_ms
        ]
        for key in old:
            del self.ids.values[key]
        return len(old)

    # -- a batch ------------------------------------------------------------------------------

    def pending_records(self) -> tuple[int, int]:
        """How many committed records wait on the commands and internal topics."""
        p = self.partition
        commands = sum(1 for _ in self.logs.log(TopicKind.COMMANDS, p).read(self.next_offset))
        internal = sum(1 for _ in self.logs.log(TopicKind.INTERNAL, p).read(self.internal_offset))
        return commands, internal

    def now(self, wall_ms: int) -> int:
        """The partition's clock: its wall time, never behind a committed batch."""
        return max(wall_ms, self.clock_ms)

    def has_work(self, wall_ms: int) -> bool:
        return sum(self.pending_records()) > 0 or bool(self.deadlines.due(self.now(wall_ms)))

    def take(self, rng: random.Random, limit: int) -> list[InRecord]:
        """Up to `limit` committed records from both topics, each topic in order, the two
        interleaved as a consumer might return them."""
        p = self.partition
        commands = self.logs.log(TopicKind.COMMANDS, p).read(self.next_offset)
        internal = self.logs.log(TopicKind.INTERNAL, p).read(self.internal_offset)
        heads = [next(commands, None), next(internal, None)]
        taken: list[InRecord] = []
        while len(taken) < limit and (heads[0] is not None or heads[1] is not None):
            if heads[0] is None:
                source = 1
            elif heads[1] is None:
                source = 0
            else:
                source = rng.randrange(2)
            head = heads[source]
            assert head is not None
            taken.append(InRecord(head.offset, head.key, head.value, head.headers, bool(source)))
            heads[source] = next(internal if source else commands, None)
        return taken

    def step(
        self, wall_ms: int, rng: random.Random, *, limit: int, fault: Fault = Fault.NONE
    ) -> StepReport:
        """One batch at wall time `wall_ms` with `fault`. Raises whatever the pure code raises
        (a valid command must never make it raise: the checker calls that a blocked
        partition), and `FencedError` when a newer writer fenced this one (nothing is written)."""
        begun = self.begin(wall_ms, rng, limit=limit, fault=fault)
        if isinstance(begun, StepReport):
            return begun
        return self.end(begun, fault)

    def begin(
        self, wall_ms: int, rng: random.Random, *, limit: int, fault: Fault = Fault.NONE
    ) -> Begun | StepReport:
        """A batch up to its commit: decided and produced in an open transaction (a
        `StepReport` instead when there is nothing to do), after a step of the state's slot
        index (`_INDEX_STEP`)."""
        owned = self.slots()
        if owned is not None:
            self.states.index_step(owned.table.slot_of, _INDEX_STEP)
        now_ms = self.now(wall_ms)
        if fault in (Fault.SET_ASIDE, Fault.SET_ASIDE_LEG):
            internal = fault is Fault.SET_ASIDE_LEG
            kind, position = (
                (TopicKind.INTERNAL, self.internal_offset)
                if internal
                else (TopicKind.COMMANDS, self.next_offset)
            )
            head = next(self.logs.log(kind, self.partition).read(position), None)
            if head is None or record_kind(head.headers) is not None:  # a move's: not set aside
                fault = Fault.NONE
            else:
                records = [InRecord(head.offset, head.key, head.value, head.headers, internal)]
                fault = Fault.SET_ASIDE
        if fault is not Fault.SET_ASIDE:
            records = self.take(rng, limit)
        due = self.deadlines.due(now_ms)
        if not records and not due:
            return StepReport((), None, now_ms, False)
        seq = self.seq + 1  # the commit sequence once this transaction commits
        if fault is Fault.SET_ASIDE:
            first = records[0]
            slot = None if first.key is None else self._slot_of(first.key)
            result = set_aside(
                self.codec,
                first,
                "simulated: its transactions kept aborting",
                partition=self.partition,
                source_topic="commands",
                events_offset=self.events_end,
                now_ms=now_ms,
                seq=seq,
                version=0 if slot is None else slot,
                reply_lanes=self.reply_lanes,
                positions=(self.next_offset, self.internal_offset),
                ids=self.ids,
                window_ms=self.window_ms,
                lost=self.lost,
                partitions=self.partitions,
                routing=self.routing,
                slots=self.slots(),
            )
        else:
            result = process_batch(
                self.codec,
                self.states,
                records,
                partition=self.partition,
                partitions=self.partitions,
                source_topic="commands",
                events_offset=self.events_end,
                ids=self.ids,
                window_ms=self.window_ms,
                now_ms=now_ms,
                seq=seq,
                reply_lanes=self.reply_lanes,
                positions=(self.next_offset, self.internal_offset),
                due=due,
                flows=self.flows,
                lost=self.lost,
                max_snapshot_bytes=self.max_snapshot_bytes,
                routing=self.routing,
                slots=self.slots(),
            )
            if result.clock_ms is not None:  # an install: the source's clock was ahead
                now_ms = max(now_ms, result.clock_ms)
        if result.next_offset < self.next_offset or result.next_internal_offset < (
            self.internal_offset
        ):
            raise AssertionError(f"partition {self.partition}: offsets moved backwards")
        marks = {**self.marks, **{p: (k, now_ms) for p, k in result.last_remembered.items()}}
        flows = self.flows if result.flows is None else result.flows
        lost = self.lost if result.lost is None else result.lost
        checkpoint = Checkpoint(
            result.next_offset, now_ms, marks, result.next_internal_offset, flows, lost, seq
        )
        txn = self.transaction()
        parts = {origin(r.offset, r.internal) for r in records if _is_part(r)}
        self._produce(txn, result, checkpoint, parts)
        return Begun(records, result, now_ms, txn, checkpoint)

    def end(self, begun: Begun, fault: Fault = Fault.NONE) -> StepReport:
        """The batch `begun` ends as `fault` says: committed and installed, or not."""
        records, result, now_ms, txn, checkpoint = begun
        if fault is Fault.ABORT:
            txn.abort()
            return StepReport(records, result, now_ms, False, self.partition)
        if fault is Fault.CRASH_BEFORE_COMMIT:
            self.restore(forget_before=None)  # its fence aborts what the dead one left open
            return StepReport(records, result, now_ms, False, self.partition)
        txn.commit()
        if fault is Fault.CRASH_AFTER_COMMIT:
            self.restore(forget_before=None)
            return StepReport(records, result, now_ms, True, self.partition)
        self.install(result, now_ms, checkpoint.remembered, checkpoint.flows, checkpoint.seq)
        self.lost = checkpoint.lost
        return StepReport(records, result, now_ms, True, self.partition)

    def install(
        self,
        result: BatchResult,
        now_ms: int,
        marks: dict[int, tuple[bytes, int]],
        flows: Flows | None,
        seq: int,
    ) -> None:
        """Committed: the batch becomes the state, the id memory, the offsets, the clock and
        the commit sequence."""
        self.states.install((r.key, r.value) for r in result.snapshots)
        self.deadlines.update(result.changed.items())
        self.deadlines.update((a, Slot(None, 0)) for a in result.departed)
        if result.slot_record is not None and (self.move_guard or not self._gave(result)):
            self.slot_record = result.slot_record
        self.ids.values.update(result.remembered)
        self.next_offset = result.next_offset
        self.internal_offset = result.next_internal_offset
        self.clock_ms = now_ms
        self.marks = marks
        self.flows = flows
        self.seq = seq

    def _gave(self, result: BatchResult) -> bool:
        """Whether `result` is a handoff: its slot record owns fewer slots than before."""
        before, after = self.slots(), result.slot_record
        return before is not None and after is not None and after.slots() < before.slots()

    def switched(self, states: SnapshotStore, snapshots: dict[bytes, bytes]) -> None:
        """A rebuilt generation (`states`, its records `snapshots`) was checked and is
        installed: written with this worker's checkpoint in one transaction (a seal: the
        commit sequence stays), then served (`Committed.switched`)."""
        txn = self.transaction()
        for key, value in snapshots.items():
            txn.put(TopicKind.SNAPSHOTS, self.partition, key, value)
        checkpoint = encode_checkpoint(self.checkpoint())
        txn.put(TopicKind.SNAPSHOTS, self.partition, CHECKPOINT_KEY, checkpoint)
        txn.commit()
        self.states = states
        self.deadlines = Deadlines(self.codec.aggregate)
        self.deadlines.rebuild(states)

    def _slot_of(self, key: bytes) -> int | None:
        try:
            slot = self.states.get(key.decode())
        except (UnicodeDecodeError, ValueError):
            return None
        return None if slot is None else int(slot.version)

    def _produce(
        self, txn: Transaction, result: BatchResult, checkpoint: Checkpoint, parts: set[int]
    ) -> None:
        """The batch's records, in the actor's order (`BatchCommit.transact`). A reply an
        install writes for a moved id entry (caused by one of the move's `parts`) carries
        `MOVED_ENTRY`: the id memory's changelog, not an answer to a client's attempt."""
        for record in result.events:
            self.events_end = max(self.events_end, txn.produce(record) + 1)
        for records in (result.snapshots, result.views, result.dlq, result.internal):
            for record in records:
                txn.produce(record)
        if result.slot_record is not None:  # before the checkpoint, as the actor writes it
            owned = encode_slot_record(result.slot_record)
            txn.put(TopicKind.SNAPSHOTS, self.partition, SLOT_RECORD_KEY, owned)
        txn.put(TopicKind.SNAPSHOTS, self.partition, CHECKPOINT_KEY, encode_checkpoint(checkpoint))
        if result.flows is not None:
            txn.put(TopicKind.STATE, self.partition, FLOWS_KEY, encode_flows(result.flows))
        for record in result.replies:
            if record.source_offset in parts:
                key, value = record.key, record.value
                txn.put(TopicKind.REPLIES, record.partition, key, value, headers=(MOVED_ENTRY,))
            else:
                txn.produce(record)


def _is_part(record: InRecord) -> bool:
    return bool(record.headers) and record_kind(record.headers) is RecordKind.HANDOFF
