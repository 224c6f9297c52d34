"""The pure batch step: command records in, the records of one Kafka transaction out.

This is the flow's TopologyTestDriver: the actor reads a batch from commands[partition],
calls `process_batch`, and produces the result in one transaction. `committed` is never
mutated; the caller applies `BatchResult.changed` only after the transaction commits, so an
aborted batch leaves the state as it was. Invariant assumed of `committed`: it only holds
aggregates of this partition (restored from its snapshots or built by earlier batches).

The record types are frozen msgspec Structs, not dataclasses: several are built per command
and a frozen dataclass costs about ten times as much to construct. They hold only ints, str,
bytes and header sequences, never a reference cycle, so the GC does not track them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from topology.codec import (
    CommandDecodeError,
    CommandEnvelope,
    PoisonCode,
    RecentReply,
    Reply,
    Slot,
    Snapshot,
    decode_command,
    encode_event,
    encode_key,
    encode_reply,
    encode_snapshot,
    encode_view,
    error_headers,
)
from topology.partitioner import partition_for
from topology.protocol import Aggregate
from topology.topics import TopicKind

__all__ = ["BatchResult", "InRecord", "OutRecord", "Outcome", "OutcomeKind", "process_batch"]


class OutcomeKind(StrEnum):
    """What happened to one command record."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    DLQ = "dlq"


class InRecord(msgspec.Struct, frozen=True, gc=False):
    """A record read from the commands topic."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


class OutRecord(msgspec.Struct, frozen=True, gc=False):
    """A record to produce. `headers` is a fresh list the caller may extend (trace context);
    `source_offset` is the offset of the command that caused it (None: snapshots, state)."""

    kind: TopicKind
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    source_offset: int | None


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """One command record's fate, for metrics and tracing; `headers` are the input record's
    headers so the caller can continue the sender's trace. `outcome` is an OutcomeKind."""

    offset: int
    command_id: str | None
    aggregate_id: str | None
    command_type: str | None
    outcome: str
    code: str | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class BatchResult:
    """Everything one transaction produces, plus the state to install once it commits.
    `changed` holds the last slot of every aggregate the batch changed; snapshots and views
    have one record per changed aggregate (views only for existing aggregates)."""

    replies: list[OutRecord]
    events: list[OutRecord]
    snapshots: list[OutRecord]
    views: list[OutRecord]
    dlq: list[OutRecord]
    changed: dict[str, Slot]
    outcomes: list[Outcome]
    next_offset: int


def process_batch(
    aggregate: Aggregate,
    committed: Mapping[str, Slot],
    records: Sequence[InRecord],
    *,
    partition: int,
    partitions: int,
    source_topic: str,
    events_offset: int,
    recent_limit: int,
    now_ms: int,
    reply_lanes: int = 1,
) -> BatchResult:
    """Handle `records` (a non-empty batch from `source_topic`[`partition`], offsets
    increasing) against `committed`. `events_offset` is the events partition's end offset
    before this batch, stamped into the snapshots; `recent_limit` bounds the replies kept per
    aggregate for deduplication; `now_ms` timestamps the events. A command's `reply_to` is a
    reply lane (< `reply_lanes`); its reply goes to replies partition
    `partition * reply_lanes + reply_to` (see `TopicLayout.reply_partition`)."""
    if not records:
        raise ValueError("a batch needs at least one record")
    if recent_limit < 1:
        raise ValueError(f"recent_limit must be >= 1, got {recent_limit}")
    batch = _Batch(
        aggregate,
        committed,
        partition=partition,
        partitions=partitions,
        source_topic=source_topic,
        recent_limit=recent_limit,
        now_ms=now_ms,
        reply_lanes=reply_lanes,
    )
    previous = -1
    for record in records:
        if record.offset <= previous:
            raise ValueError(f"offset {record.offset} does not follow {previous}")
        previous = record.offset
        batch.handle(record)
    return batch.result(events_offset, previous + 1)


class _Batch:
    """The outputs of one batch so far and the working copies of the slots it changed."""

    def __init__(
        self,
        aggregate: Aggregate,
        committed: Mapping[str, Slot],
        *,
        partition: int,
        partitions: int,
        source_topic: str,
        recent_limit: int,
        now_ms: int,
        reply_lanes: int,
    ) -> None:
        self.aggregate = aggregate
        self.committed = committed
        self.partition = partition
        self.partitions = partitions
        self.reply_lanes = reply_lanes
        self.source_topic = source_topic
        self.recent_limit = recent_limit
        self.now_ms = now_ms
        self.replies: list[OutRecord] = []
        self.events: list[OutRecord] = []
        self.dlq: list[OutRecord] = []
        self.outcomes: list[Outcome] = []
        self.changed: dict[str, Slot] = {}

    def handle(self, record: InRecord) -> None:
        """Dead-letter, deduplicate or decide one command record."""
        try:
            envelope, command = decode_command(self.aggregate, record.value)
        except CommandDecodeError as error:
            self.dead_letter(record, error.code, error.message, error.envelope)
            return
        aggregate_id = envelope.aggregate_id
        slot = self.slot(aggregate_id)
        problem = self.misrouted(record.key, envelope, known=slot is not None)
        if problem is not None:
            self.dead_letter(record, *problem, envelope)
            return
        command_id = envelope.command_id
        state: Any = None
        version = 0
        recent: tuple[RecentReply, ...] = ()
        if slot is not None:
            for seen in slot.recent:
                if seen.command_id == command_id:
                    self.reply(record, envelope.reply_to, seen.reply(aggregate_id))
                    self.outcome(record, envelope, OutcomeKind.DUPLICATE, seen.code)
                    return
            state, version, recent = slot.state, slot.version, slot.recent
        decision = self.aggregate.decide(state, command, envelope.expected_version)
        if isinstance(decision, list):
            for event in decision:
                version += 1
                state = self.aggregate.evolve(state, event)
                value = encode_event(
                    self.aggregate,
                    aggregate_id,
                    version,
                    event,
                    command_id=command_id,
                    timestamp_ms=self.now_ms,
                )
                self.events.append(
                    OutRecord(
                        TopicKind.EVENTS, self.partition, record.key, value, [], record.offset
                    )
                )
            reply = Reply(command_id, aggregate_id, True, None, "", version)
            kind = OutcomeKind.ACCEPTED
        else:
            reply = Reply(command_id, aggregate_id, False, decision.code, decision.message, version)
            kind = OutcomeKind.REJECTED
        recent = (*recent, RecentReply.of(reply))
        if len(recent) > self.recent_limit:
            recent = recent[-self.recent_limit :]
        self.changed[aggregate_id] = Slot(state, version, recent)
        self.reply(record, envelope.reply_to, reply)
        self.outcome(record, envelope, kind, reply.code)

    def slot(self, aggregate_id: str) -> Slot | None:
        """The aggregate's latest slot: this batch's working copy, else the committed one."""
        slot = self.changed.get(aggregate_id)
        return self.committed.get(aggregate_id) if slot is None else slot

    def misrouted(
        self, key: bytes | None, envelope: CommandEnvelope, *, known: bool
    ) -> tuple[PoisonCode, str] | None:
        """Why a decodable command does not belong here, if it does not. A known aggregate
        already passed the partition check, so the hash is only computed for new ones."""
        aggregate_id = envelope.aggregate_id
        if key is None or key != encode_key(aggregate_id):
            return PoisonCode.KEY_MISMATCH, f"record key {key!r} is not {aggregate_id!r}"
        if not known:
            owner = partition_for(key, self.partitions)
            if owner != self.partition:
                return (
                    PoisonCode.WRONG_PARTITION,
                    f"{aggregate_id!r} belongs to partition {owner}, not {self.partition}",
                )
        reply_to = envelope.reply_to
        if reply_to is not None and reply_to >= self.reply_lanes:
            return (
                PoisonCode.INVALID_REPLY_TO,
                f"reply_to {reply_to} is not one of the {self.reply_lanes} reply lanes",
            )
        return None

    def dead_letter(
        self, record: InRecord, code: str, message: str, envelope: CommandEnvelope | None
    ) -> None:
        """Send the raw record to the dlq and, when the envelope was readable, a rejection."""
        headers = [
            *record.headers,
            *error_headers(self.source_topic, self.partition, record.offset, code, message),
        ]
        self.dlq.append(
            OutRecord(
                TopicKind.DLQ, self.partition, record.key, record.value, headers, record.offset
            )
        )
        if envelope is not None:
            slot = self.slot(envelope.aggregate_id)
            version = 0 if slot is None else slot.version
            reply = Reply(envelope.command_id, envelope.aggregate_id, False, code, message, version)
            self.reply(record, envelope.reply_to, reply)
        self.outcome(record, envelope, OutcomeKind.DLQ, code)

    def reply(self, record: InRecord, reply_to: int | None, reply: Reply) -> None:
        """Send `reply` to the sender's reply lane on this partition, if it has a valid one."""
        if reply_to is not None and reply_to < self.reply_lanes:
            self.replies.append(
                OutRecord(
                    TopicKind.REPLIES,
                    self.partition * self.reply_lanes + reply_to,
                    encode_key(reply.command_id),
                    encode_reply(reply),
                    [],
                    record.offset,
                )
            )

    def outcome(
        self,
        record: InRecord,
        envelope: CommandEnvelope | None,
        kind: OutcomeKind,
        code: str | None,
    ) -> None:
        self.outcomes.append(
            Outcome(
                record.offset,
                None if envelope is None else envelope.command_id,
                None if envelope is None else envelope.aggregate_id,
                None if envelope is None else envelope.type,
                kind,
                code,
                record.headers,
            )
        )

    def result(self, events_offset: int, next_offset: int) -> BatchResult:
        """The batch's records, with one snapshot and one view per changed aggregate."""
        snapshots: list[OutRecord] = []
        views: list[OutRecord] = []
        schema_version = self.aggregate.state_schema_version
        for aggregate_id, slot in self.changed.items():
            key = encode_key(aggregate_id)
            snapshot = Snapshot(schema_version, aggregate_id, slot, events_offset)
            value = encode_snapshot(self.aggregate, snapshot)
            snapshots.append(OutRecord(TopicKind.SNAPSHOTS, self.partition, key, value, [], None))
            if slot.state is not None:
                value = encode_view(self.aggregate, slot.state)
                views.append(OutRecord(TopicKind.STATE, self.partition, key, value, [], None))
        return BatchResult(
            replies=self.replies,
            events=self.events,
            snapshots=snapshots,
            views=views,
            dlq=self.dlq,
            changed=self.changed,
            outcomes=self.outcomes,
            next_offset=next_offset,
        )
