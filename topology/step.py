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

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, cast

import msgspec

from topology.codec.aggregate import Codec
from topology.codec.commands import CommandDecodeError, command_fingerprint, readdressed
from topology.codec.keys import encode_id_key, encode_internal_id_key, encode_key
from topology.codec.replies import decode_reply, encode_reply
from topology.envelopes import CommandEnvelope, Origin, Reply, Slot
from topology.flows import Flows, tallied
from topology.idempotency import IdCode, IdMemory, IdVerdict, judge
from topology.limits import (
    MAX_DLQ_HEADER_BYTES,
    MAX_DLQ_KEY_BYTES,
    MAX_DLQ_VALUE_BYTES,
    clip,
)
from topology.partitioner import partition_for
from topology.protocol import DecisionLike, RejectionLike, Saga, SendLike, Tallied
from topology.topics import TopicKind

__all__ = [
    "FORGED_INTERNAL_COMMAND",
    "FORGOTTEN_LEG",
    "IN_FLIGHT",
    "NOT_SET_ASIDE",
    "UNREMEMBERED_KEY_PREFIX",
    "VERSION_CONFLICT",
    "BatchResult",
    "InRecord",
    "OutRecord",
    "Outcome",
    "OutcomeKind",
    "PoisonCode",
    "error_headers",
    "origin",
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


IN_FLIGHT: Final = "in_flight"
"""The code of the reply a saga's first step remembers under its command id while the saga
runs (with the internal commands to send again on a retry), and of what a leg that refused
the saga remembers: never a client's answer (clients skip it)."""

FORGOTTEN_LEG: Final = "forgotten_leg"
"""The outcome code of a leg sent again on a retry that the id memory no longer holds: it
was done long ago (its original precedes it on the same internal partition), so it is
skipped; counted, never an answer."""

NOT_SET_ASIDE: Final = "not_set_aside"
"""The outcome code of an operator's forced leg whose leg the id memory does not hold as set
aside (it was done, or is too old to tell): nothing is forced."""

FORGED_INTERNAL_COMMAND: Final = "forged_internal_command"
"""The refusal of an internal command type (or an envelope with an origin) on the public
commands topic: only the service sends internal commands, on the internal topic."""


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
    NOT_INTERNAL = "not_internal"  # a client command type on the internal topic


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
    """A record read from the commands topic (`internal`: from the internal topic)."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    internal: bool = False


class OutRecord(msgspec.Struct, frozen=True, gc=False):
    """A record to produce. `headers` is a fresh list the caller may extend (trace context);
    `source_offset` names the command that caused it (`origin`; None: snapshots, state)."""

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
    internal: bool = False  # read from the internal topic


def origin(offset: int, internal: bool) -> int:
    """How outputs name the record that caused them (`OutRecord.source_offset`): its
    offset, negated minus one for the internal topic, so the two topics never collide."""
    return -offset - 1 if internal else offset


@dataclass(frozen=True)
class BatchResult:
    """Everything one transaction produces, plus what to install once it commits. `changed`
    holds the last slot of every aggregate the batch changed (only aggregates with new events);
    `internal` the internal commands for other partitions; `next_offset` and
    `next_internal_offset` where the commands and internal topics resume;
    snapshots and views have one record per changed aggregate; `held` says why the batch
    stopped before an internal command of a newer schema version (the offsets then stop
    before it: read again once upgraded). `remembered` holds the
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
    internal: list[OutRecord] = field(default_factory=list)
    next_internal_offset: int = 0
    flows: Flows | None = None  # the partition's flows after this batch (None: unchanged)
    held: str | None = None  # why the batch stopped before a record it cannot read yet
    lost: frozenset[bytes] | None = None  # the partition's lost legs after it (None: same)


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
    positions: tuple[int, int] = (0, 0),
    due: Sequence[str] = (),
    flows: Flows | None = None,
    lost: frozenset[bytes] = frozenset(),
) -> BatchResult:
    """Handle `records` (a batch from `source_topic`[`partition`] and the internal topic's
    same partition, offsets increasing per topic) against `committed` and the id memory
    `ids`. `events_offset` is the events partition's end offset before this batch, stamped
    into the snapshots; `now_ms` is the partition's clock (it timestamps the events, judges
    the idempotency window of `window_ms` and the deadlines). A command's `reply_to` is a
    reply lane (< `reply_lanes`); its reply goes to replies partition `partition *
    reply_lanes + reply_to` (see `TopicLayout.reply_partition`). `positions` are the next
    (commands, internal) offsets before this batch; `due` the aggregates whose deadlines are
    due (a saga aggregate is asked for their commands first); `flows` the partition's money
    flows so far (a tallied aggregate: see `topology.flows`); `lost` the id keys
    of its internal commands set aside and not settled yet. A batch with no records is a
    tick: it only handles what is due."""
    if not records and not due:
        raise ValueError("a batch needs at least one record or something due")
    batch = _Batch(
        codec,
        committed,
        partition=partition,
        partitions=partitions,
        source_topic=source_topic,
        window_ms=window_ms,
        now_ms=now_ms,
        reply_lanes=reply_lanes,
        ids=ids,
    )
    batch.flows = flows
    batch.lost = lost
    batch.expire(due)
    decoded: list[tuple[InRecord, CommandEnvelope | CommandDecodeError, Any]] = []
    nexts = list(positions)
    previous = [-1, -1]
    held: str | None = None
    known = getattr(codec.aggregate, "internal_schema_version", 1)
    for record in records:
        source = int(record.internal)
        if record.offset <= previous[source]:
            raise ValueError(f"offset {record.offset} does not follow {previous[source]}")
        try:
            envelope, command = codec.decode_command(record.value)
        except CommandDecodeError as error:
            decoded.append((record, error, None))
        else:
            written = envelope.schema_version or 1
            if record.internal and written > known:
                held = (
                    f"internal command at offset {record.offset} has schema version {written}, "
                    f"newer than this worker's {known}: upgrade this worker; the batch stops "
                    "before it (it is never dead-lettered)"
                )
                break
            decoded.append((record, envelope, command))
        previous[source] = nexts[source] = record.offset
        nexts[source] += 1
    keys = [
        _id_key(parsed, internal=record.internal)
        for record, parsed, _ in decoded
        if isinstance(parsed, CommandEnvelope)
    ]
    seen = {k: v for k, v in zip(keys, ids.lookup(keys), strict=True) if v is not None}
    for record, parsed, command in decoded:  # in offset order
        if isinstance(parsed, CommandDecodeError):
            code = PoisonCode(parsed.code)
            batch.dead_letter(record, code, parsed.message, parsed.envelope)
            continue
        key = _id_key(parsed, internal=record.internal)
        batch.handle(record, parsed, command, key, seen.get(key))
        batch.run_local()
    return batch.result(events_offset, nexts[0], nexts[1], held)


def _id_key(envelope: CommandEnvelope, *, internal: bool) -> bytes:
    if internal:
        return encode_internal_id_key(envelope.aggregate_id, envelope.command_id)
    return encode_id_key(envelope.aggregate_id, envelope.command_id)


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
    positions: tuple[int, int] = (0, 0),
    window_ms: int,
    ids: IdMemory | None = None,
    lost: frozenset[bytes] = frozenset(),
) -> BatchResult:
    """The transaction that sets `record` aside: its dead letter (code `unprocessable`, with
    `reason`) and, when its envelope is readable, a rejection to its sender that is
    remembered like any decision (a retry of the id gets it again, never an execution).
    An id the memory `ids` already holds keeps its answer: the record is a retry, so its
    sender gets the remembered reply (none while its saga runs), and nothing is overwritten
    (an internal command set aside is a lost leg: added to `lost`, the checkpoint's);
    one first tried longer than `window_ms` ago is refused as expired, as the batch step
    would.
    `version` is the aggregate's current version. Nothing else."""
    batch = _Batch(
        codec,
        {},
        partition=partition,
        partitions=1,
        source_topic=source_topic,
        window_ms=window_ms,
        now_ms=now_ms,
        reply_lanes=reply_lanes,
        ids=None,
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
        key = _id_key(envelope, internal=record.internal)
        remembered = None if ids is None else ids.lookup([key])[0]
        earlier = None if remembered is None else decode_reply(remembered)
        if record.internal:
            # An original leg never decided is lost: remembered as set aside and named in the
            # checkpoint until an operator settles it. A copy sent again on a retry is never
            # done anyway, and a settlement set aside leaves its leg lost: neither is new.
            if remembered is None and not envelope.resent and not envelope.redrive:
                batch.remember(record, None, key, encode_reply(reply))
                batch.lost_before, batch.lost = lost, lost | {key}
            nexts = list(positions)
            nexts[1] = record.offset + 1
            return batch.result(events_offset, nexts[0], nexts[1])
        verdict = judge(
            now_ms=now_ms,
            window_ms=window_ms,
            first_attempt_ms=first,
            fingerprint=reply.fingerprint,
            seen_first_attempt_ms=None if earlier is None else earlier.first_attempt_ms,
            seen_fingerprint=None if earlier is None else earlier.fingerprint,
        )
        if verdict is IdVerdict.EXECUTE:
            batch.remember(record, envelope.reply_to, key, encode_reply(reply))
        elif verdict is not IdVerdict.REPEAT or remembered is None or earlier is None:
            code, message = batch.refusal(verdict, envelope, first, earlier)
            batch.refuse(record, envelope, key, code, message, version=version)
        elif earlier.code != IN_FLIGHT:
            batch.send(record, envelope.reply_to, key, remembered)
    nexts = list(positions)
    nexts[int(record.internal)] = record.offset + 1
    return batch.result(events_offset, nexts[0], nexts[1])


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
        ids: IdMemory | None,
    ) -> None:
        self.codec = codec
        self.aggregate = codec.aggregate
        self.saga = codec.aggregate if isinstance(codec.aggregate, Saga) else None
        self.ids = ids
        self.internal: list[OutRecord] = []
        self.local: deque[InRecord] = deque()  # internal commands for this partition
        self.tally = codec.aggregate if isinstance(codec.aggregate, Tallied) else None
        self.flows: Flows | None = None
        self.lost: frozenset[bytes] = frozenset()
        self.lost_before: frozenset[bytes] | None = None
        self.moves: list[tuple[str, str, int]] = []
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
        internal_type = envelope.type in self.codec.internal_types
        if record.internal and not internal_type:
            message = f"{envelope.type} is not an internal command"
            self.dead_letter(record, PoisonCode.NOT_INTERNAL, message, envelope)
            return
        version = 0 if slot is None else slot.version
        if not record.internal and (internal_type or envelope.origin is not None):
            message = f"{envelope.type} is internal to the service: a client cannot send it"
            self.refuse(record, envelope, key, FORGED_INTERNAL_COMMAND, message, version=version)
            return
        origin = envelope.origin
        remembered = self.remembered.get(key, seen)
        if origin is not None:
            first, fingerprint = origin.first_attempt_ms, origin.fingerprint
        else:
            first = self.now_ms if envelope.first_attempt_ms is None else envelope.first_attempt_ms
            fingerprint = command_fingerprint(envelope)
        earlier = None if remembered is None else decode_reply(remembered)
        if record.internal and envelope.redrive:
            # An operator forcing a lost leg: done only while the checkpoint names it as set
            # aside (never done), so a settlement happens once, never beside the leg.
            if key in self.lost:
                if self.lost_before is None:
                    self.lost_before = self.lost
                self.lost = self.lost - {key}
                self.execute(
                    record, envelope, command, key, slot=slot, attempt=(first, fingerprint)
                )
            else:
                self.outcome(record, envelope, OutcomeKind.DUPLICATE, NOT_SET_ASIDE)
            return
        if record.internal:
            # A leg is never refused by the id memory: its debit has committed, so it must
            # land whenever it arrives. Its id names one transfer forever, so a leg the memory
            # holds is a copy sent again on a retry: answered from memory, never done twice;
            # a copy the memory no longer holds was done long ago (the original precedes it
            # on the same internal partition): skipped, never done again.
            if remembered is not None and earlier is not None:
                self.repeat(record, envelope, key, remembered, earlier)
            elif envelope.resent:
                self.outcome(record, envelope, OutcomeKind.DUPLICATE, FORGOTTEN_LEG)
            else:
                self.execute(
                    record, envelope, command, key, slot=slot, attempt=(first, fingerprint)
                )
            return
        verdict = judge(
            now_ms=self.now_ms,
            window_ms=self.window_ms,
            first_attempt_ms=first,
            fingerprint=fingerprint,
            seen_first_attempt_ms=None if earlier is None else earlier.first_attempt_ms,
            seen_fingerprint=None if earlier is None else earlier.fingerprint,
        )
        if verdict is IdVerdict.REPEAT and remembered is not None and earlier is not None:
            self.repeat(record, envelope, key, remembered, earlier)
            return
        if verdict is not IdVerdict.EXECUTE:
            code, message = self.refusal(verdict, envelope, first, earlier)
            self.refuse(record, envelope, key, code, message, version=version)
            return
        self.execute(record, envelope, command, key, slot=slot, attempt=(first, fingerprint))

    def execute(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        command: Any,
        key: bytes,
        *,
        slot: Slot | None,
        attempt: tuple[int, int],
    ) -> None:
        """Decide a command the id memory lets through (`attempt`: its first-attempt time and
        fingerprint), append its events, answer, and route what it sends."""
        aggregate_id = envelope.aggregate_id
        version = 0 if slot is None else slot.version
        state: Any = None if slot is None else slot.state
        expected = envelope.expected_version
        decision: list[Any] | RejectionLike | DecisionLike
        if expected is not None and expected != version:
            message = f"expected version {expected}, account is at version {version}"
            decision = _Refused(VERSION_CONFLICT, message)
        elif self.saga is not None:
            decision = self.saga.decide_in(
                state,
                command,
                command_id=envelope.command_id,
                aggregate_id=aggregate_id,
                now_ms=self.now_ms,
                version=version,
            )
        else:
            decision = self.aggregate.decide(state, command)
        events, sends, final, refusal = _parts(decision)
        for event in events:
            version += 1
            state = self.aggregate.evolve(state, event)
            if self.tally is not None:
                self.moves.extend(self.tally.moves(event))
            value = self.codec.encode_event(
                aggregate_id,
                version,
                event,
                command_id=envelope.command_id,
                timestamp_ms=self.now_ms,
            )
            self.events.append(
                OutRecord(
                    TopicKind.EVENTS,
                    self.partition,
                    record.key,
                    value,
                    [],
                    origin(record.offset, record.internal),
                )
            )
        if events:
            self.changed[aggregate_id] = Slot(state, version)
        self.conclude(
            record, envelope, key, version=version, attempt=attempt, step=(sends, final, refusal)
        )

    def conclude(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        *,
        version: int,
        attempt: tuple[int, int],
        step: tuple[Sequence[SendLike], bool, RejectionLike | None],
    ) -> None:
        """Answer a decided command and route what it sends: a final decision remembers (and
        sends) its reply; one that defers it remembers an in-flight marker instead."""
        sends, final, refusal = step
        first, fingerprint = attempt
        aggregate_id, origin = envelope.aggregate_id, envelope.origin
        code: str | None = None
        message = ""
        if refusal is not None:
            code, message = refusal.code, refusal.message
        lane = envelope.reply_to if origin is None else origin.reply_to
        kind = OutcomeKind.ACCEPTED if refusal is None else OutcomeKind.REJECTED
        if final:
            if origin is None:
                reply = Reply(
                    "" if record.internal else envelope.command_id,
                    aggregate_id,
                    refusal is None,
                    code,
                    message,
                    version,
                    first,
                    fingerprint,
                )
                value = encode_reply(reply)
            elif origin.final is not None:
                value = origin.final  # decided by an earlier leg (a refusal)
            else:
                value = encode_reply(
                    Reply(
                        origin.command_id,
                        origin.aggregate_id,
                        refusal is None,
                        code,
                        message,
                        origin.version,
                        first,
                        fingerprint,
                    )
                )
            self.remember(record, lane, key, value)
            if origin is not None:
                self.end_saga(record, origin, value)
            self.route(record, sends, None)
            self.outcome(record, envelope, kind, code)
            return
        # the saga goes on: the client's reply is deferred to its last leg
        if origin is None:
            origin = Origin(
                envelope.command_id, aggregate_id, envelope.reply_to, first, fingerprint, version
            )
        elif refusal is not None:
            refused = Reply(
                origin.command_id,
                origin.aggregate_id,
                False,
                refusal.code,
                refusal.message,
                origin.version,
                first,
                fingerprint,
            )
            origin = msgspec.structs.replace(origin, final=encode_reply(refused))
        resend = self.route(record, sends, origin)
        marker = Reply(
            origin.command_id,
            origin.aggregate_id,
            False,
            IN_FLIGHT,
            "",
            version,
            first,
            fingerprint,
            resend if envelope.origin is None else None,
        )
        self.remember(record, lane, key, encode_reply(marker))
        self.outcome(record, envelope, kind, code)

    def refuse(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        *refusal: str,
        version: int,
    ) -> None:
        """A refusal (code, message) by the flow itself: not remembered (it changes
        nothing)."""
        code, message = refusal
        reply = Reply(envelope.command_id, envelope.aggregate_id, False, code, message, version)
        self.send(record, envelope.reply_to, UNREMEMBERED_KEY_PREFIX + key, encode_reply(reply))
        self.outcome(record, envelope, OutcomeKind.REJECTED, code)

    def repeat(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        remembered: bytes,
        earlier: Reply,
    ) -> None:
        """Answer a retry from memory. An in-flight marker is never an answer: its saga's
        internal commands are sent again instead, to answer on the retry's reply lane (their
        targets remember them: what they did is repeated, never done twice)."""
        self.outcome(record, envelope, OutcomeKind.DUPLICATE, earlier.code)
        if earlier.code != IN_FLIGHT:
            lane = envelope.reply_to if envelope.origin is None else envelope.origin.reply_to
            self.send(record, lane, key, remembered)
            return
        for target, value in earlier.resend or ():
            self.dispatch(record, target, readdressed(value, envelope.reply_to))

    def end_saga(self, record: InRecord, origin: Origin, value: bytes) -> None:
        """The saga's final reply is also remembered under its first command's id when that
        command's aggregate lives here (replacing its in-flight marker)."""
        key = encode_key(origin.aggregate_id)
        if partition_for(key, self.partitions) == self.partition:
            origin_key = encode_id_key(origin.aggregate_id, origin.command_id)
            self.remember(record, origin.reply_to, origin_key, value)

    def route(
        self, record: InRecord, sends: Sequence[SendLike], origin: Origin | None
    ) -> list[tuple[str, bytes]]:
        """Send a decision's internal commands (with `origin`): the (target, record value)
        of each."""
        first = self.now_ms if origin is None else origin.first_attempt_ms
        routed = []
        for send in sends:
            value = self.codec.encode_internal(
                send.target,
                send.command,
                command_id=send.command_id,
                origin=origin,
                first_attempt_ms=first,
            )
            self.dispatch(record, send.target, value)
            routed.append((send.target, value))
        return routed

    def dispatch(self, record: InRecord, target: str, value: bytes) -> None:
        """An internal command for this partition is handled in this batch, right after the
        command that sent it; one for another partition goes to its internal topic partition
        in this transaction."""
        key = encode_key(target)
        owner = partition_for(key, self.partitions)
        if owner == self.partition:
            self.local.append(InRecord(record.offset, key, value, (), True))
        else:
            self.internal.append(
                OutRecord(
                    TopicKind.INTERNAL,
                    owner,
                    key,
                    value,
                    [],
                    origin(record.offset, record.internal),
                )
            )

    def run_local(self) -> None:
        """Handle the internal commands sent to this partition, in order (they may send
        more)."""
        while self.local:
            record = self.local.popleft()
            try:
                envelope, command = self.codec.decode_command(record.value)
            except CommandDecodeError as error:
                self.dead_letter(record, PoisonCode(error.code), error.message, error.envelope)
                continue
            key = _id_key(envelope, internal=True)
            seen = self.remembered.get(key)
            if seen is None and self.ids is not None:
                seen = self.ids.lookup([key])[0]
            self.handle(record, envelope, command, key, seen)

    def expire(self, due: Sequence[str]) -> None:
        """Handle the internal commands that the deadlines of the `due` aggregates send."""
        if self.saga is None:
            return
        tick = InRecord(-1, None, None, (), True)
        for aggregate_id in due:
            slot = self.slot(aggregate_id)
            if slot is None or slot.state is None:
                continue
            self.route(tick, self.saga.due(aggregate_id, slot.state, self.now_ms), None)
            self.run_local()

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
            OutRecord(
                TopicKind.DLQ,
                self.partition,
                key,
                value,
                headers,
                origin(record.offset, record.internal),
            )
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
        self.replies.append(
            OutRecord(
                TopicKind.REPLIES, partition, key, value, [], origin(record.offset, record.internal)
            )
        )
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
                record.internal,
            )
        )

    def result(
        self, events_offset: int, next_offset: int, next_internal: int, held: str | None = None
    ) -> BatchResult:
        """The batch's records, with one snapshot and one view per changed aggregate."""
        snapshots: list[OutRecord] = []
        views: list[OutRecord] = []
        for aggregate_id, slot in self.changed.items():
            key, value = self.codec.snapshot_record(aggregate_id, slot, events_offset)
            snapshots.append(OutRecord(TopicKind.SNAPSHOTS, self.partition, key, value, [], None))
            if slot.state is not None:
                value = self.codec.encode_view(slot.state, slot.version)
                views.append(OutRecord(TopicKind.STATE, self.partition, key, value, [], None))
        flows = None
        if self.moves:
            partitions = self.partitions
            flows = tallied(
                self.flows or Flows(),
                self.moves,
                lambda other: partition_for(encode_key(other), partitions),
            )
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
            internal=self.internal,
            next_internal_offset=next_internal,
            flows=flows,
            held=held,
            lost=None if self.lost_before is None else self.lost,
        )


def _parts(
    decision: list[Any] | RejectionLike | DecisionLike,
) -> tuple[Sequence[Any], Sequence[SendLike], bool, RejectionLike | None]:
    """(events, sends, final, refusal) of a decision: events, a rejection or a saga's step."""
    if isinstance(decision, list):
        return decision, (), True, None
    if hasattr(decision, "events"):
        step = cast(DecisionLike, decision)
        return step.events, step.sends, step.final, step.refusal
    return (), (), True, decision
