"""One batch, one transaction: consumed records in, the batch step, the Kafka transaction
in numbered steps with its tracing beside it; on abort, the abort policy.

Invariants (a reader cannot see them from one method):

- the in-memory state is exactly what Kafka holds committed: a batch's snapshots become the
  state, and its decided ids the id memory, only after its transaction commits; an aborted
  batch leaves both untouched and rewinds the consumer to the committed offset;
- the committed command and internal command offsets only move forward
  (``OffsetOrderError``, a real error);
- the partition clock (``Committed.clock_ms``) never runs backwards: it is checkpointed with
  the command offset in the same transaction;
- after any aborted batch the producer is renewed (a new epoch): a failed produce spoils the
  idempotent producer's sequence state for that partition;
- a repartition's move (its request or parts) is never set aside: a partition whose move
  keeps aborting blocks instead.

(Over 400 lines: the transaction's steps stay written out in order in one place.)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from actors import messaging
from actors.batch_trace import BatchTrace
from actors.committed import Committed
from actors.idstore import IdStore
from actors.kafka import AbortableError
from actors.messages import Counters
from actors.metrics import PartitionMetrics
from actors.records import in_record
from actors.routes import Routes
from actors.transactional import TransactionalWriter
from topology.aborts import AbortAction, AbortPolicy
from topology.codec.checkpoint import CHECKPOINT_KEY, encode_checkpoint
from topology.codec.state import encode_flows
from topology.codes import SkipCode
from topology.envelopes import Checkpoint
from topology.flows import FLOWS_KEY
from topology.moves import (
    SLOT_RECORD_KEY,
    RecordKind,
    SlotRecord,
    encode_slot_record,
    record_kind,
)
from topology.names import Names
from topology.settings import Settings
from topology.step.aside import set_aside
from topology.step.batch import process_batch
from topology.step.records import BatchResult, InRecord, Outcome, OutcomeKind
from topology.topics import TopicKind

__all__ = [
    "BatchCommit",
    "OffsetOrderError",
    "PartitionBlockedError",
    "write_checkpoint",
]

log = logging.getLogger(__name__)

_LEG_REFUSALS = frozenset({OutcomeKind.REJECTED, OutcomeKind.DLQ})
_KEPT_PAUSES = 256  # the moves' pauses a partition reports (most recent)
_HOLD_PAUSE_S = 5.0  # between two reads of an internal command of a newer schema version


class PartitionBlockedError(Exception):
    """The partition cannot go on without an operator: its message says why and how."""


class OffsetOrderError(RuntimeError):
    """A batch would not move the committed command offset forward."""


def _a_move(record: InRecord) -> bool:
    """Whether `record` is a move's request or part (never set aside: its accounts would go
    with it)."""
    try:
        return record_kind(record.headers) in (RecordKind.MOVE, RecordKind.HANDOFF)
    except ValueError:
        return False


def write_checkpoint(
    writer: TransactionalWriter,
    topic: str,
    partition: int,
    checkpoint: Checkpoint,
    *,
    slot_record: SlotRecord | None = None,
) -> None:
    """A checkpoint in a transaction of its own: what only the partition's actor knows (where
    commands resume, and the clock), so that a restart right after a switch (or an unblock)
    restores exactly this state and position. ``slot_record``, the partition's, goes before
    it (a switch to a new generation carries it there: a restart then owns what it owned)."""
    writer.begin()
    if slot_record is not None:
        writer.produce(topic, encode_slot_record(slot_record), SLOT_RECORD_KEY, partition)
    writer.produce(topic, encode_checkpoint(checkpoint), CHECKPOINT_KEY, partition)
    writer.commit()


class BatchCommit:
    """Commits the batches of one partition through one ``TransactionalWriter``. Each batch
    routes by the table ``routes`` holds when it starts (None: Kafka's layout), so a newer
    table given between batches applies from the next one."""

    def __init__(
        self,
        settings: Settings,
        partition: int,
        committed: Committed,
        *,
        writer: TransactionalWriter,
        ids: IdStore,
        counters: Counters,
        metrics: PartitionMetrics,
        aborts: AbortPolicy,
        rewind: Callable[[int, int], None],
        wait: Callable[[float], Any],
        routes: Routes | None = None,
    ) -> None:
        self.settings = settings
        self.partition = partition
        self.routes = routes
        self.committed = committed
        self.writer = writer
        self.ids = ids
        self.counters = counters
        self.metrics = metrics
        self.aborts = aborts
        self._rewind = rewind  # seek the consumer to (command, internal command) offsets
        self._wait = wait  # sleep, unless the partition is told to stop
        self.error: str | None = None  # the aborts in a row, while they last
        self.trace = BatchTrace(
            committed.topics[TopicKind.COMMANDS],
            partition,
            Names.of(settings).commands_group,
            messaging.server(settings.bootstrap_servers),
        )

    # -- a batch ---------------------------------------------------------------------------

    def run(self, messages: list[Any]) -> None:
        """Step and commit one batch of consumed messages (none: a tick, when a deadline is
        due); on abort, follow the policy. The batch's process spans last until its
        transaction has ended."""
        internal = self.committed.topics[TopicKind.INTERNAL]
        records = [in_record(m, internal) for m in messages]
        self.trace.start(records)
        failed: BaseException | None = None
        try:
            self._run(records)
        except BaseException as e:
            failed = e
            raise
        finally:
            self.trace.end(failed)

    def _run(self, records: list[InRecord]) -> None:
        started_at = time.time()
        c = self.committed
        now_ms = c.now_ms()
        due = c.due(now_ms)
        if not records and not due:
            return
        if self.routes is not None and self.routes.table is not None:
            c.routing = self.routes.table  # the newest published table (it only moves forward)
        slots = c.slots(self.partition)
        result = process_batch(
            c.codec,
            c.states,
            records,
            partition=self.partition,
            partitions=self.settings.partitions,
            source_topic=c.topics[TopicKind.COMMANDS],
            events_offset=c.events_end,
            ids=self.ids,
            window_ms=self.settings.idempotency_window_ms,
            now_ms=now_ms,
            seq=c.next_seq,
            reply_lanes=self.settings.reply_lanes,
            positions=(c.next_offset, c.internal_offset),
            due=due,
            flows=c.flows,
            lost=c.lost,
            routing=c.routing,
            slots=slots,
        )
        if result.clock_ms is not None:  # an install: the source's clock was ahead
            now_ms = max(now_ms, result.clock_ms)
        before, after = (
            (c.next_offset, c.internal_offset),
            (
                result.next_offset,
                result.next_internal_offset,
            ),
        )
        if result.held is not None:
            self._hold(result.held)
            if after == before and not result.outcomes:
                return  # the batch stopped at its first record: nothing to commit
        if min(a - b for a, b in zip(after, before, strict=True)) < 0 or (
            records and after == before and result.held is None
        ):
            raise OffsetOrderError(
                f"partition {self.partition}: offsets {after} would not move forward from {before}"
            )
        checkpoint = c.checkpoint(result, now_ms)
        try:
            self.transact(result, checkpoint)
        except AbortableError as e:
            self._after_abort(records, e)
            return
        if self.aborts.aborts:
            self.error = None  # the aborts are over
        self.aborts.committed(wrote_events=bool(result.events))
        self._installed(result, checkpoint, now_ms)
        self._count(result, started_at)
        if result.move_id is not None:
            self._paused(result.move_id, started_at)
        if result.held is not None or result.slot_record is not None:
            # read again from what committed: after a pause, or after a move (the batch
            # ended there, and the records after it run with the new slot record)
            self._rewind(c.next_offset, c.internal_offset)

    def _paused(self, move_id: str, started_at: float) -> None:
        """Record a move's leg made here: its batch's time from start to commit, the time
        every command of this partition waited for it (the last ``_KEPT_PAUSES`` kept)."""
        pauses = self.counters.move_pauses_ms
        pauses[move_id] = (time.time() - started_at) * 1000
        for old in list(pauses)[:-_KEPT_PAUSES]:
            del pauses[old]
        log.info("partition %d: move %s made in %.0f ms", self.partition, move_id, pauses[move_id])

    def _hold(self, reason: str) -> None:
        """A newer worker wrote an internal command this one cannot read: stop before it
        (rewound after this batch), say so, and wait; the leg is read again later and never
        dead-lettered, so the money it carries stays accounted for."""
        log.error("partition %d: %s", self.partition, reason)
        self.error = reason
        self.metrics.held()
        self._wait(_HOLD_PAUSE_S)

    def _installed(self, result: BatchResult, checkpoint: Checkpoint, now_ms: int) -> None:
        """Committed: only now does the batch become the state that queries see, its replies
        what the id memory remembers (with how far its changelog now reaches), and its
        offsets and clock the partition's."""
        self.ids.install(result.remembered, self.committed.reply_ends)
        self.committed.installed(result, checkpoint, now_ms)

    def _after_abort(self, records: list[InRecord], error: AbortableError) -> None:
        """Abort, renew the producer, rewind, and follow the abort policy: retry after a
        pause, isolate the first record, set it aside, or block (`topology.aborts`)."""
        log.warning("partition %d: aborting a batch of %d: %s", self.partition, len(records), error)
        self.counters.aborts += 1
        self.metrics.abort()
        self.writer.abort()  # a failure here is fatal: the worker re-creates and restores
        # After a failed produce the idempotent producer's sequence state for that partition is
        # spoiled (the next transaction's records time out: "requires epoch bump"): a new
        # producer bumps the epoch and starts clean, fencing the old one.
        self.writer.renew()
        self._rewind(self.committed.next_offset, self.committed.internal_offset)
        if not records:
            self._wait(self.aborts.pause())  # a tick: nothing to isolate
            return
        action = self.aborts.aborted(len(records))
        self.error = f"{self.aborts.aborts} aborts in a row ({action}): {error}"
        if action is AbortAction.BLOCK:
            raise PartitionBlockedError(
                f"every transaction aborts, even of one record alone: {error}. Fix the cause "
                f"(topic configs, ACLs, the broker), then run `eventledger unblock --app "
                f"{self.settings.app_id} --partition {self.partition}`"
            )
        if action is AbortAction.SET_ASIDE:
            if _a_move(records[0]):
                raise PartitionBlockedError(
                    f"a repartition's move keeps aborting: {error}. Fix the cause, then run "
                    f"`eventledger unblock --app {self.settings.app_id} --partition "
                    f"{self.partition}`"
                )
            self._set_aside(records[0], str(error))
            return
        self._wait(self.aborts.pause())

    def _set_aside(self, record: InRecord, reason: str) -> None:
        """Dead-letter `record` in a transaction of its own (it kept aborting alone), or
        forward it, when its slot is not this partition's."""
        started_at = time.time()
        c = self.committed
        now_ms = c.now_ms()
        result = set_aside(
            c.codec,
            record,
            reason,
            partition=self.partition,
            source_topic=c.topics[TopicKind.INTERNAL if record.internal else TopicKind.COMMANDS],
            events_offset=c.events_end,
            now_ms=now_ms,
            seq=c.next_seq,
            reply_lanes=self.settings.reply_lanes,
            positions=(c.next_offset, c.internal_offset),
            ids=self.ids,
            window_ms=self.settings.idempotency_window_ms,
            lost=c.lost,
            partitions=self.settings.partitions,
            routing=c.routing,
            slots=c.slots(self.partition),
        )
        checkpoint = c.checkpoint(result, now_ms)
        try:
            self.transact(result, checkpoint)
        except AbortableError as e:
            raise PartitionBlockedError(
                f"offset {record.offset} could not even be set aside: {e}"
            ) from e
        log.error("partition %d: set offset %d aside: %s", self.partition, record.offset, reason)
        self._installed(result, checkpoint, now_ms)
        self._rewind(c.next_offset, c.internal_offset)
        self.aborts.committed(set_aside=True)
        self._count(result, started_at)

    # -- the transaction -------------------------------------------------------------------

    def transact(self, result: BatchResult, checkpoint: Checkpoint) -> None:
        """One Kafka transaction for the whole batch, in order, each step checked by the
        writer; what fails comes out classified (AbortableError: abort and rewind)."""
        writer = self.writer
        topics = self.committed.topics
        trace_headers = self.trace.decided(result.outcomes)
        started = time.monotonic()
        with self.trace.commit(len(result.outcomes), result.next_offset):
            # 1. begin
            writer.begin()
            produce = writer.produce
            # 2. events, each carrying the trace context of the command that caused it; the
            # last one's delivery report tells how far the events log reaches
            events = topics[TopicKind.EVENTS]
            last = len(result.events) - 1
            for i, r in enumerate(result.events):
                headers = r.headers
                if trace_headers and r.source_offset in trace_headers:
                    headers = headers + trace_headers[r.source_offset]
                kw: dict[str, Any] = {"headers": headers} if headers else {}
                if i == last:
                    kw["on_delivery"] = self._on_event_delivered
                produce(events, r.value, r.key, r.partition, **kw)
            # 3. the last snapshot and public view of each changed aggregate, dead letters,
            # internal commands for other partitions
            for kind, records in (
                (TopicKind.SNAPSHOTS, result.snapshots),
                (TopicKind.STATE, result.views),
                (TopicKind.DLQ, result.dlq),
                (TopicKind.INTERNAL, result.internal),
            ):
                topic = topics[kind]
                for r in records:
                    if r.headers:
                        produce(topic, r.value, r.key, r.partition, headers=r.headers)
                    else:  # an empty headers list still costs librdkafka an allocation
                        produce(topic, r.value, r.key, r.partition)
            # 3b. the partition's new slot record, after a handoff or an install: before
            # the checkpoint, so a reader of the snapshots has it with its batch
            if result.slot_record is not None:
                produce(
                    topics[TopicKind.SNAPSHOTS],
                    encode_slot_record(result.slot_record),
                    SLOT_RECORD_KEY,
                    self.partition,
                )
            # 4. the command offsets and commit sequence, as the checkpoint after the batch's
            # snapshots: restore reads both, so state and position cannot disagree (and this
            # costs no consumer-group requests); a reader of the snapshots in order has the
            # whole batch once it reaches its checkpoint
            produce(
                topics[TopicKind.SNAPSHOTS],
                encode_checkpoint(checkpoint),
                CHECKPOINT_KEY,
                self.partition,
            )
            # 4b. the partition's money flows, beside the views they account for
            if result.flows is not None:
                produce(
                    topics[TopicKind.STATE], encode_flows(result.flows), FLOWS_KEY, self.partition
                )
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
            writer.commit()
        self.counters.last_commit_ms = (time.monotonic() - started) * 1000.0
        self.counters.last_commit_at = time.time()

    def _on_event_delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.committed.reached_events(msg.offset() + 1)

    def _on_reply(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.committed.reached_reply(msg.partition(), msg.offset() + 1)

    def _count(self, result: BatchResult, started_at: float) -> None:
        """Counters and metrics of a committed batch (outcomes tallied once)."""
        c = self.counters
        if c.batches == 0:
            c.first_batch_at = started_at
        c.batches += 1
        c.committed_offset = result.next_offset
        tally = Counter(o.outcome for o in result.outcomes)
        c.processed += len(result.outcomes)
        c.accepted += tally[OutcomeKind.ACCEPTED]
        c.rejected += tally[OutcomeKind.REJECTED]
        c.duplicates += tally[OutcomeKind.DUPLICATE]
        c.dlq += tally[OutcomeKind.DLQ]
        c.forwarded += tally[OutcomeKind.FORWARDED]
        self.metrics.batch(tally, len(result.outcomes), c.last_commit_ms / 1000.0)
        legs = self.committed.codec.internal_types
        for o in result.outcomes:
            if (
                o.internal
                and (o.command_type is None or o.command_type in legs)  # not a forwarded command
            ) and (
                o.outcome in _LEG_REFUSALS
                or (o.outcome == OutcomeKind.DUPLICATE and o.code == SkipCode.FORGOTTEN_LEG)
            ):
                self._leg_refused(o)

    def _leg_refused(self, o: Outcome) -> None:
        """A leg that refused its transfer (its money goes back: a refund or a release is
        on its way), was set aside or dead-lettered (its money stays in flight: see
        `eventledger transfers --in-flight`), or was a forgotten copy: a log line and a
        metric, so no refusal is silent."""
        level = logging.ERROR if o.outcome == OutcomeKind.DLQ else logging.WARNING
        log.log(
            level,
            "partition %d: leg %s on %s %s (%s) at internal offset %d",
            self.partition,
            o.command_id,
            o.aggregate_id,
            o.outcome,
            o.code,
            o.offset,
        )
        self.metrics.leg_refused(str(o.outcome), o.code or "")
