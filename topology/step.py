"""The pure batch step: command records in, the records of one Kafka transaction out.

This is the flow's TopologyTestDriver: the actor reads a batch from commands[partition],
calls `process_batch`, and produces the result in one transaction. Neither `committed` nor
the id memory is mutated; the caller installs `BatchResult.snapshots` and
`BatchResult.remembered` only after the transaction commits, so an aborted batch leaves both
as they were. Invariant assumed of `committed`: it only holds aggregates of this partition
(restored from its snapshots or built by earlier batches). Every command id is judged by
`topology.idempotency.judge` before its command is decided.

The record types are frozen msgspec Structs, not dataclasses: several are built per command
and a frozen dataclass costs about ten times as much to construct. They hold only ints, str,
bytes and header sequences, never a reference cycle, so the GC does not track them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import msgspec

from topology.codec import (
    Codec,
    CommandDecodeError,
    CommandEnvelope,
    Reply,
    Slot,
    command_fingerprint,
    decode_reply,
    encode_id_key,
    encode_key,
    encode_reply,
)
from topology.idempotency import IdCode, IdMemory, IdVerdict, judge
from topology.limits import MAX_DLQ_HEADER_BYTES, MAX_DLQ_KEY_BYTES, MAX_DLQ_VALUE_BYTES, clip
from topology.partitioner import partition_for
from topology.protocol import RejectionLike
from topology.topics import TopicKind

__all__ = [
    "UNREMEMBERED_KEY_PREFIX",
    "VERSION_CONFLICT",
    "BatchResult",
    "InRecord",
    "OutRecord",
    "Outcome",
    "OutcomeKind",
    "PoisonCode",
    "error_headers",
    "process_batch",
    "set_aside",
]

UNREMEMBERED_KEY_PREFIX = b"\xff"
"""Prefixes the record key of a reply that is not remembered (a refusal by the memory itself,
a dead letter), so that compaction of the replies topic never lets it replace the remembered
reply of the same id (remembered replies are keyed by `encode_id_key`, a msgpack array)."""


VERSION_CONFLICT: Final = "version_conflict"
"""The refusal of a command whose expected version is not its aggregate's version (optimistic
concurrency: checked here, against the slot's version, before the domain decides)."""


class PoisonCode(StrEnum):
    """Why a command record is dead-lettered: the first four are decoding failures (the
    codec's ``DecodeFailure``, same values), the rest are routing failures found here."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNKNOWN_COMMAND_TYPE = "unknown_command_type"
    INVALID_PAYLOAD = "invalid_payload"
    KEY_MISMATCH = "key_mismatch"
    WRONG_PARTITION = "wrong_partition"
    INVALID_REPLY_TO = "invalid_reply_to"
    UNPROCESSABLE = "unprocessable"  # set aside after its transactions kept aborting


def error_headers(
    topic: str, partition: int, offset: int, code: str, message: str
) -> list[tuple[str, bytes]]:
    """Headers that say where a dead-lettered record came from and why it was refused."""
    return [
        ("eventledger.error.topic", topic.encode()),
        ("eventledger.error.partition", str(partition).encode()),
        ("eventledger.error.offset", str(offset).encode()),
        ("eventledger.error.code", code.encode()),
        ("eventledger.error.message", message.encode()),
    ]


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
    """Everything one transaction produces, plus what to install once it commits. `changed`
    holds the last slot of every aggregate the batch changed (only aggregates with new events);
    snapshots and views have one record per changed aggregate. `remembered` holds the
    (id key, reply value) of every command id decided in this batch, for the id memory, and
    `last_remembered` the id key of the last of them written to each replies partition (the
    changelog), for the checkpoint's marks."""

    replies: list[OutRecord]
    events: list[OutRecord]
    snapshots: list[OutRecord]
    views: list[OutRecord]
    dlq: list[OutRecord]
    changed: dict[str, Slot]
    remembered: dict[bytes, bytes]
    last_remembered: dict[int, bytes]
    outcomes: list[Outcome]
    next_offset: int


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
    reply_lanes: int = 1,
) -> BatchResult:
    """Handle `records` (a non-empty batch from `source_topic`[`partition`], offsets
    increasing) against `committed` and the id memory `ids` (asked once, for every id of the
    batch). `events_offset` is the events partition's end offset before this batch, stamped
    into the snapshots; `now_ms` is the partition's clock (it timestamps the events and
    judges the idempotency window of `window_ms`). A command's `reply_to` is a reply lane
    (< `reply_lanes`); its reply goes to replies partition `partition * reply_lanes +
    reply_to` (see `TopicLayout.reply_partition`)."""
    if not records:
        raise ValueError("a batch needs at least one record")
    batch = _Batch(
        codec,
        committed,
        partition=partition,
        partitions=partitions,
        source_topic=source_topic,
        window_ms=window_ms,
        now_ms=now_ms,
        reply_lanes=reply_lanes,
    )
    decoded: list[tuple[InRecord, CommandEnvelope | CommandDecodeError, Any]] = []
    previous = -1
    for record in records:
        if record.offset <= previous:
            raise ValueError(f"offset {record.offset} does not follow {previous}")
        previous = record.offset
        try:
            decoded.append((record, *codec.decode_command(record.value)))
        except CommandDecodeError as error:
            decoded.append((record, error, None))
    keys = [
        encode_id_key(parsed.aggregate_id, parsed.command_id)
        for _, parsed, _ in decoded
        if isinstance(parsed, CommandEnvelope)
    ]
    seen = {k: v for k, v in zip(keys, ids.lookup(keys), strict=True) if v is not None}
    for record, parsed, command in decoded:  # in offset order
        if isinstance(parsed, CommandDecodeError):
            code = PoisonCode(parsed.code)
            batch.dead_letter(record, code, parsed.message, parsed.envelope)
            continue
        key = encode_id_key(parsed.aggregate_id, parsed.command_id)
        batch.handle(record, parsed, command, key, seen.get(key))
    return batch.result(events_offset, previous + 1)


def _copied_headers(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A record's headers to copy into its dead letter, while they fit the limit, and only
    those whose name is valid UTF-8 (a client library would fail to produce another); how
    many were left out is said in a header of its own."""
    copied: list[tuple[str, bytes]] = []
    size = 0
    for name, value in headers:
        try:
            name.encode()
        except UnicodeEncodeError:
            continue
        size += len(name) + len(value or b"")
        if size > MAX_DLQ_HEADER_BYTES:
            left = len(headers) - len(copied)
            return [*copied, ("eventledger.error.headers_dropped", str(left).encode())]
        copied.append((name, value))
    return copied


def set_aside(
    codec: Codec,
    record: InRecord,
    reason: str,
    *,
    partition: int,
    source_topic: str,
    events_offset: int,
    now_ms: int,
    version: int = 0,
    reply_lanes: int = 1,
) -> BatchResult:
    """The transaction that sets `record` aside: its dead letter (code `unprocessable`, with
    `reason`) and, when its envelope is readable, a rejection to its sender that is
    remembered like any decision (a retry of the id gets it again, never an execution).
    `version` is the aggregate's current version. Nothing else."""
    batch = _Batch(
        codec,
        {},
        partition=partition,
        partitions=1,
        source_topic=source_topic,
        window_ms=0,
        now_ms=now_ms,
        reply_lanes=reply_lanes,
    )
    try:
        envelope: CommandEnvelope | None = codec.decode_command(record.value)[0]
    except CommandDecodeError as error:
        envelope = error.envelope
    reason = clip(reason)
    batch.dead_letter(record, PoisonCode.UNPROCESSABLE, reason, None)
    if envelope is not None:
        first = now_ms if envelope.first_attempt_ms is None else envelope.first_attempt_ms
        reply = Reply(
            envelope.command_id,
            envelope.aggregate_id,
            False,
            PoisonCode.UNPROCESSABLE,
            reason,
            version,
            first,
            command_fingerprint(envelope),
        )
        key = encode_id_key(envelope.aggregate_id, envelope.command_id)
        batch.remember(record, envelope.reply_to, key, encode_reply(reply))
    return batch.result(events_offset, record.offset + 1)


class _Refused(msgspec.Struct, frozen=True):
    """A refusal by the flow itself (not the domain's)."""

    code: str
    message: str


class _Batch:
    """The outputs of one batch so far and the working copies of the slots it changed."""

    def __init__(
        self,
        codec: Codec,
        committed: Mapping[str, Slot],
        *,
        partition: int,
        partitions: int,
        source_topic: str,
        window_ms: int,
        now_ms: int,
        reply_lanes: int,
    ) -> None:
        self.codec = codec
        self.aggregate = codec.aggregate
        self.committed = committed
        self.partition = partition
        self.partitions = partitions
        self.reply_lanes = reply_lanes
        self.source_topic = source_topic
        self.window_ms = window_ms
        self.now_ms = now_ms
        self.replies: list[OutRecord] = []
        self.events: list[OutRecord] = []
        self.dlq: list[OutRecord] = []
        self.outcomes: list[Outcome] = []
        self.changed: dict[str, Slot] = {}
        self.remembered: dict[bytes, bytes] = {}
        self.last_remembered: dict[int, bytes] = {}

    def handle(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        command: Any,
        key: bytes,
        seen: bytes | None,
    ) -> None:
        """Dead-letter, repeat, refuse or decide one decoded command. `seen` is the reply
        the memory holds for its id (`key`) before this batch."""
        aggregate_id = envelope.aggregate_id
        slot = self.slot(aggregate_id)
        problem = self.misrouted(record.key, envelope, known=slot is not None)
        if problem is not None:
            self.dead_letter(record, *problem, envelope)
            return
        remembered = self.remembered.get(key, seen)
        first = self.now_ms if envelope.first_attempt_ms is None else envelope.first_attempt_ms
        fingerprint = command_fingerprint(envelope)
        earlier = None if remembered is None else decode_reply(remembered)
        verdict = judge(
            now_ms=self.now_ms,
            window_ms=self.window_ms,
            first_attempt_ms=first,
            fingerprint=fingerprint,
            seen_first_attempt_ms=None if earlier is None else earlier.first_attempt_ms,
            seen_fingerprint=None if earlier is None else earlier.fingerprint,
        )
        version = 0 if slot is None else slot.version
        if verdict is IdVerdict.REPEAT and remembered is not None and earlier is not None:
            self.send(record, envelope.reply_to, key, remembered)
            self.outcome(record, envelope, OutcomeKind.DUPLICATE, earlier.code)
            return
        if verdict is not IdVerdict.EXECUTE:
            code, message = self.refusal(verdict, envelope, first, earlier)
            reply = Reply(envelope.command_id, aggregate_id, False, code, message, version)
            self.send(record, envelope.reply_to, UNREMEMBERED_KEY_PREFIX + key, encode_reply(reply))
            self.outcome(record, envelope, OutcomeKind.REJECTED, code)
            return
        state: Any = None if slot is None else slot.state
        expected = envelope.expected_version
        decision: list[Any] | RejectionLike
        if expected is not None and expected != version:
            message = f"expected version {expected}, account is at version {version}"
            decision = _Refused(VERSION_CONFLICT, message)
        else:
            decision = self.aggregate.decide(state, command)
        if isinstance(decision, list):
            for event in decision:
                version += 1
                state = self.aggregate.evolve(state, event)
                value = self.codec.encode_event(
                    aggregate_id,
                    version,
                    event,
                    command_id=envelope.command_id,
                    timestamp_ms=self.now_ms,
                )
                self.events.append(
                    OutRecord(
                        TopicKind.EVENTS, self.partition, record.key, value, [], record.offset
                    )
                )
            if decision:
                self.changed[aggregate_id] = Slot(state, version)
            reply = Reply(
                envelope.command_id, aggregate_id, True, None, "", version, first, fingerprint
            )
            kind = OutcomeKind.ACCEPTED
        else:
            reply = Reply(
                envelope.command_id,
                aggregate_id,
                False,
                decision.code,
                decision.message,
                version,
                first,
                fingerprint,
            )
            kind = OutcomeKind.REJECTED
        value = encode_reply(reply)
        self.remember(record, envelope.reply_to, key, value)
        self.outcome(record, envelope, kind, reply.code)

    def refusal(
        self,
        verdict: IdVerdict,
        envelope: CommandEnvelope,
        first: int,
        earlier: Reply | None,
    ) -> tuple[str, str]:
        """The code and message of a refusal by the id memory."""
        command_id = envelope.command_id
        if verdict is IdVerdict.REUSED:
            return (
                IdCode.ID_REUSED,
                f"command id {command_id!r} was used for another command on "
                f"{envelope.aggregate_id!r}; use a new id for a new command",
            )
        if verdict is IdVerdict.IN_FUTURE:
            return (
                IdCode.FIRST_ATTEMPT_IN_FUTURE,
                f"first attempt time {first} is ahead of the partition's clock {self.now_ms}",
            )
        started = first if earlier is None else earlier.first_attempt_ms
        return (
            IdCode.EXPIRED,
            f"command id {command_id!r} was first tried {self.now_ms - started} ms ago, past "
            f"the {self.window_ms} ms idempotency window; it is not executed again",
        )

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
        """Send the record to the dlq (cut to the dead-letter limits, and said so in its
        headers) and, when the envelope was readable, a rejection (not remembered: the same
        bytes are dead-lettered the same way again)."""
        message = clip(message)
        headers = _copied_headers(record.headers)
        headers += error_headers(self.source_topic, self.partition, record.offset, code, message)
        key, value = record.key, record.value
        if key is not None and len(key) > MAX_DLQ_KEY_BYTES:
            headers.append(("eventledger.error.key_bytes", str(len(key)).encode()))
            key = key[:MAX_DLQ_KEY_BYTES]
        if value is not None and len(value) > MAX_DLQ_VALUE_BYTES:
            headers.append(("eventledger.error.value_bytes", str(len(value)).encode()))
            value = value[:MAX_DLQ_VALUE_BYTES]
        self.dlq.append(
            OutRecord(TopicKind.DLQ, self.partition, key, value, headers, record.offset)
        )
        if envelope is not None:
            slot = self.slot(envelope.aggregate_id)
            version = 0 if slot is None else slot.version
            reply = Reply(envelope.command_id, envelope.aggregate_id, False, code, message, version)
            key = encode_id_key(envelope.aggregate_id, envelope.command_id)
            self.send(record, envelope.reply_to, UNREMEMBERED_KEY_PREFIX + key, encode_reply(reply))
        self.outcome(record, envelope, OutcomeKind.DLQ, code)

    def remember(self, record: InRecord, reply_to: int | None, key: bytes, value: bytes) -> None:
        """Remember a decision's reply and write it to the id memory's changelog: to the
        sender's reply lane, or to lane 0 when the sender wants no reply (so a new disk
        restores it too); mark it as that replies partition's last remembered reply."""
        self.remembered[key] = value
        lane = reply_to if reply_to is not None and reply_to < self.reply_lanes else 0
        self.last_remembered[self.send(record, lane, key, value)] = key

    def send(self, record: InRecord, reply_to: int | None, key: bytes, value: bytes) -> int:
        """Send a reply (`value`, keyed `key`) to the sender's reply lane on this partition,
        if it has a valid one; the replies partition written (-1: none)."""
        if reply_to is None or reply_to >= self.reply_lanes:
            return -1
        partition = self.partition * self.reply_lanes + reply_to
        self.replies.append(OutRecord(TopicKind.REPLIES, partition, key, value, [], record.offset))
        return partition

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
        for aggregate_id, slot in self.changed.items():
            key, value = self.codec.snapshot_record(aggregate_id, slot, events_offset)
            snapshots.append(OutRecord(TopicKind.SNAPSHOTS, self.partition, key, value, [], None))
            if slot.state is not None:
                value = self.codec.encode_view(slot.state, slot.version)
                views.append(OutRecord(TopicKind.STATE, self.partition, key, value, [], None))
        return BatchResult(
            replies=self.replies,
            events=self.events,
            snapshots=snapshots,
            views=views,
            dlq=self.dlq,
            changed=self.changed,
            remembered=self.remembered,
            last_remembered=self.last_remembered,
            outcomes=self.outcomes,
            next_offset=next_offset,
        )
