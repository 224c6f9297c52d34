"""The batch step's driver: `process_batch`, the steps of one batch in order.

This is the flow's TopologyTestDriver: the actor reads a batch from commands[partition] (and
internal[partition]), calls `process_batch`, and produces the result in one transaction.
Neither `committed` nor the id memory is mutated; the caller installs `BatchResult.changed`
(its snapshots) and `BatchResult.remembered` only after the transaction commits, so an
aborted batch leaves both as they were. No snapshot or view over the size limit is ever in
a result: a batch that would write one runs again with the size guard on
(`topology.step.guard`).
"""

from collections.abc import Mapping, Sequence
from typing import Any

from topology.codec.aggregate import Codec
from topology.codec.commands import CommandDecodeError
from topology.codec.replies import encode_entry
from topology.codes import FlowCode, PoisonCode
from topology.envelopes import Answered, CommandEnvelope, Reply, Slot
from topology.flows import Flows
from topology.idempotency import IdMemory
from topology.limits import MAX_SNAPSHOT_BYTES
from topology.moves import (
    HandoffPart,
    MoveSlots,
    SlotRecord,
)
from topology.protocol import Saga
from topology.routing import Router, RoutingTable
from topology.step import reading
from topology.step.admission import (
    Attempt,
    DeadLetter,
    Execute,
    Refuse,
    Repeat,
    Skip,
    admit,
    id_key,
)
from topology.step.answers import Answers
from topology.step.context import StepContext
from topology.step.deciding import Decider, refused
from topology.step.forwarding import forward
from topology.step.guard import SizeGuard
from topology.step.moving import Moves
from topology.step.output import Output, assemble
from topology.step.records import BatchResult, InRecord, OutcomeKind
from topology.step.saga import SagaRouter
from topology.step.state import LostLegs, Slots, Tally

__all__ = ["process_batch"]


def process_batch(
    codec: Codec,
    committed: Mapping[str, Slot],
    records: Sequence[InRecord],
    *,
    partition: int,
    partitions: int,
    source_topic: str,
    events_offset: int,
    ids: IdMemory,
    window_ms: int,
    now_ms: int,
    seq: int,
    reply_lanes: int = 1,
    positions: tuple[int, int] = (0, 0),
    due: Sequence[str] = (),
    flows: Flows | None = None,
    lost: frozenset[bytes] = frozenset(),
    max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES,
    routing: RoutingTable | None = None,
    slots: SlotRecord | None = None,
) -> BatchResult:
    """Handle `records` (a batch from `source_topic`[`partition`] and the internal topic's
    same partition, offsets increasing per topic) against `committed` and the id memory
    `ids`. `events_offset` is the events partition's end offset before this batch, stamped
    into the snapshots; `now_ms` is the partition's clock (it timestamps the events, judges
    the idempotency window of `window_ms` and the deadlines); `seq` is the partition's commit
    sequence once this batch commits (its replies' `position`). A command's `reply_to` is a
    reply lane (< `reply_lanes`). `positions` are the next (commands, internal) offsets
    before this batch; `due` the aggregates whose deadlines are due (a saga aggregate is
    asked for their commands first); `flows` the partition's money flows so far (a tallied
    aggregate: see `topology.flows`); `lost` the id keys of its internal commands set aside
    and not settled yet; `max_snapshot_bytes` the size limit of a snapshot or view record;
    `routing` the application's published routing table (None: Kafka's layout over
    `partitions`); `slots` the partition's slot record (None: the application has no slots:
    a record for an aggregate of another partition is dead-lettered, and a move's record
    waits). With a slot record, a record for a slot it does not own is forwarded to the
    owner by the effective table (`routing` merged with the record's), in this
    transaction; a `MoveSlots` request hands slots off, a move's parts install them, and
    the batch ends at either (`topology.step.moving`). Raises ValueError for a batch that
    holds a part of a move but not its last part.
    A batch with no records is a tick: it only handles what is due."""
    if not records and not due:
        raise ValueError("a batch needs at least one record or something due")
    effective = routing
    if slots is not None:
        effective = slots.table if routing is None else routing.merge(slots.table)
    router = Router(partitions, effective)
    context = StepContext(
        codec, partition, router, reply_lanes, source_topic, window_ms, now_ms, seq, slots
    )
    # 1. The records decoded, each topic in offset order, up to an internal command of a
    #    schema this worker cannot read yet (or a move's record with no slot record).
    read = reading.read(
        codec, records, positions, _internal_schema_version(codec.aggregate), slots is not None
    )
    reading.whole_moves(read.decoded)
    # 2. What the id memory holds for their ids, in one lookup.
    keys = [
        id_key(parsed, internal=record.leg)
        for record, parsed, _ in read.decoded
        if isinstance(parsed, CommandEnvelope)
    ]
    seen = {k: v for k, v in zip(keys, ids.lookup(keys), strict=True) if v is not None}
    guarded: frozenset[str] = frozenset()
    while True:
        guard = SizeGuard(context, events_offset, max_snapshot_bytes, guarded)
        batch = _Batch(context, committed, ids=ids, flows=flows, lost=lost, guard=guard)
        # 3. What the due deadlines send, before any record.
        batch.expire(due)
        # 4. Each record in offset order, then the internal commands it sent to this
        #    partition.
        #    A handoff or an install ends the batch.
        offsets, held = read.next_offsets, read.held
        for i, (record, parsed, command) in enumerate(read.decoded):
            if isinstance(parsed, CommandDecodeError):
                batch.poison(record, parsed)
                continue
            if isinstance(parsed, MoveSlots | HandoffPart):
                if batch.move(record, parsed):
                    offsets, held = reading.after(positions, read.decoded[: i + 1]), None
                    break
                continue
            key = id_key(parsed, internal=record.leg)
            batch.handle(record, parsed, command, key, seen.get(key))
            batch.run_local()
        # 5. The transaction's records, and what to install once it commits; again, with
        #    the guard on for them, while an aggregate's records are over the size limit.
        result = batch.result(offsets, held)
        if not guard.over:
            return result
        if guard.over <= guarded:
            raise AssertionError(f"the size guard let {sorted(guard.over)} pass the limit")
        guarded |= guard.over


def _internal_schema_version(aggregate: object) -> int:
    """The internal command schema version this worker reads up to (1: not a saga)."""
    return aggregate.internal_schema_version if isinstance(aggregate, Saga) else 1


class _Batch:
    """One batch's parts, wired together: its working state (slots, money moves, lost legs),
    its output, and the deciding, routing and answering that write to them."""

    def __init__(
        self,
        context: StepContext,
        committed: Mapping[str, Slot],
        *,
        ids: IdMemory,
        flows: Flows | None,
        lost: frozenset[bytes],
        guard: SizeGuard,
    ) -> None:
        aggregate = context.codec.aggregate
        self.context = context
        self.ids = ids
        self.guard = guard
        self.saga: Saga[Any, Any, Any, Any] | None = (
            aggregate if isinstance(aggregate, Saga) else None
        )
        self.slots = Slots(committed)
        self.tally = Tally(aggregate, flows)
        self.legs = LostLegs(lost)
        self.output = Output(context)
        self.router = SagaRouter(context, self.output)
        self.decider = Decider(context, self.saga, self.slots, self.output, self.tally)
        self.answers = Answers(context, self.output, self.router)
        self.moves = Moves(
            context, self.slots, self.output, self.tally, self.legs, ids=ids, guard=guard
        )

    def move(self, record: InRecord, parsed: MoveSlots | HandoffPart) -> bool:
        """A move's request (hand off) or part (install); whether the batch ends here."""
        if isinstance(parsed, MoveSlots):
            return self.moves.hand_off(record, parsed)
        return self.moves.take(record, parsed)

    def expire(self, due: Sequence[str]) -> None:
        """Handle the internal commands that the deadlines of the `due` aggregates send."""
        if self.saga is None:
            return
        tick = InRecord(-1, None, None, (), True)
        for aggregate_id in due:
            slot = self.slots.get(aggregate_id)
            if slot is None or slot.state is None:
                continue
            sends = self.saga.due(aggregate_id, slot.state, self.context.now_ms)
            self.router.route(tick, sends, None, None)
            self.run_local()

    def poison(self, record: InRecord, error: CommandDecodeError) -> None:
        """Dead-letter a record that does not decode."""
        envelope = error.envelope
        version = 0 if envelope is None else self.slots.version(envelope.aggregate_id)
        self.answers.dead_letter(record, error.code, error.message, envelope, version=version)

    def handle(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        command: Any,
        key: bytes,
        seen: bytes | None,
    ) -> None:
        """Admit and then dead-letter, refuse, repeat, skip or execute one decoded command.
        `seen` is the reply the memory held for its id (`key`) before this batch. A command
        for a slot this partition does not own is forwarded instead."""
        slot = self.slots.get(envelope.aggregate_id)
        if slot is None and forward(self.context, self.output, record, envelope):
            return
        admission = admit(
            self.context,
            record,
            envelope,
            key,
            known=slot is not None,
            remembered=self.output.remembered.get(key, seen),
            lost=self.legs.lost,
        )
        version = 0 if slot is None else slot.version
        match admission:
            case DeadLetter(code=code, message=message):
                self.answers.dead_letter(record, code, message, envelope, version=version)
            case Refuse(code=code, message=message):
                self.answers.refuse(record, envelope, key, (code, message), version=version)
            case Repeat(remembered=remembered, earlier=earlier):
                self.answers.repeat(record, envelope, key, remembered, earlier)
            case Skip(code=code):
                self.output.outcome(record, envelope, OutcomeKind.DUPLICATE, code)
            case Execute(attempt=attempt, redrive=redrive):
                if redrive:
                    self.legs.settle(key)
                self.execute(record, envelope, command, key, slot=slot, attempt=attempt)

    def execute(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        command: Any,
        key: bytes,
        *,
        slot: Slot | None,
        attempt: Attempt,
    ) -> None:
        """Decide a command the id memory lets through, append its events (unless the size
        guard refuses them), answer it and route what it sends."""
        decided = self.decider.decide(envelope, command, slot)
        version = 0 if slot is None else slot.version
        after = self.decider.fold(slot, decided.events)
        if after is not None:
            too_large = self.guard.refusal(envelope.aggregate_id, after)
            if too_large is not None:
                if record.leg:
                    self.lose(record, envelope, key, too_large, version=version, attempt=attempt)
                    return
                decided = refused(FlowCode.STATE_TOO_LARGE, too_large)
            else:
                self.decider.write(record, envelope, decided.events, after)
                version = after.version
        self.answers.conclude(record, envelope, key, decided, version=version, attempt=attempt)

    def lose(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        reason: str,
        *,
        version: int,
        attempt: Attempt,
    ) -> None:
        """Set aside a leg whose events the size guard refused, as if its transactions had
        kept aborting (`topology.step.aside`): dead-lettered, remembered as `unprocessable`
        and lost until an operator settles it; its money stays in flight. A settlement set
        aside leaves its leg lost (remembered already)."""
        self.answers.dead_letter(record, PoisonCode.UNPROCESSABLE, reason, None, version=version)
        if not envelope.redrive:
            reply = Reply.refuse(
                command_id=envelope.command_id,
                aggregate_id=envelope.aggregate_id,
                code=PoisonCode.UNPROCESSABLE,
                message=reason,
                version=version,
                position=self.context.position,
            )
            self.output.remember(record, None, key, encode_entry(Answered(reply, *attempt)))
        self.legs.add(key)

    def run_local(self) -> None:
        """Handle the internal commands sent to this partition, in order (they may send
        more)."""
        while (record := self.router.next_local()) is not None:
            try:
                envelope, command = self.context.codec.commands.decode(record.value)
            except CommandDecodeError as error:
                self.poison(record, error)
                continue
            key = id_key(envelope, internal=True)
            seen = self.output.remembered.get(key)
            if seen is None:
                seen = self.ids.lookup([key])[0]
            self.handle(record, envelope, command, key, seen)

    def result(self, next_offsets: tuple[int, int], held: str | None) -> BatchResult:
        return assemble(
            self.context,
            self.output,
            self.slots,
            self.tally,
            self.legs,
            guard=self.guard,
            next_offsets=next_offsets,
            held=held,
            moves=self.moves,
        )
