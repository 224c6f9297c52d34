"""The one codec boundary: msgspec msgpack for every record, lz4 frames for snapshots.

No other module turns records into bytes or back. What depends on an aggregate's types is a
``Codec`` bound to that aggregate (its decoders built once, with it); envelopes, replies,
keys and checkpoints are the same for every aggregate and stay module functions. Events carry their
schema version; older events are upcast on read through the aggregate's upcaster chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar, get_args

import msgspec

from topology.envelopes import (
    Answered,
    Checkpoint,
    CommandEnvelope,
    Deferred,
    EventEnvelope,
    IdEntry,
    Origin,
    Reply,
    Slot,
    Snapshot,
)
from topology.flows import Flows
from topology.limits import MAX_COMMAND_BYTES, MAX_ID_CHARS
from topology.protocol import AnyAggregate

__all__ = [
    "CHECKPOINT_KEY",
    "TOUCH_KEY",
    "Answered",
    "Checkpoint",
    "Codec",
    "CodecError",
    "CommandDecodeError",
    "CommandEnvelope",
    "DecodeFailure",
    "Deferred",
    "EventEnvelope",
    "IdEntry",
    "Origin",
    "Reply",
    "Slot",
    "Snapshot",
    "StaleSnapshotError",
    "command_fingerprint",
    "decode_answer",
    "decode_checkpoint",
    "decode_entry",
    "decode_event_envelope",
    "decode_flows",
    "decode_key",
    "decode_reply_record",
    "encode_checkpoint",
    "encode_command",
    "encode_entry",
    "encode_flows",
    "encode_history_key",
    "encode_id_key",
    "encode_internal_id_key",
    "encode_key",
    "encode_reply",
    "history_prefix",
    "readdressed",
]


class DecodeFailure(StrEnum):
    """Why a command record does not decode (the batch step dead-letters it with this code,
    see ``topology.step.PoisonCode``)."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNKNOWN_COMMAND_TYPE = "unknown_command_type"
    INVALID_PAYLOAD = "invalid_payload"


class CodecError(ValueError):
    """Bytes that do not decode to what was expected."""


class CommandDecodeError(CodecError):
    """A poison command. `code` is MALFORMED or TOO_LARGE (no envelope could be read),
    UNKNOWN_COMMAND_TYPE or INVALID_PAYLOAD; `envelope` is set when it could be read."""

    def __init__(self, code: DecodeFailure, message: str, envelope: CommandEnvelope | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.envelope = envelope


class StaleSnapshotError(CodecError):
    """A snapshot written with another state schema version: rebuild from events instead."""


T = TypeVar("T")

_ENCODER: Final = msgspec.msgpack.Encoder()
_ANY: Final = msgspec.msgpack.Decoder()
_COMMAND_ENVELOPE: Final = msgspec.msgpack.Decoder(CommandEnvelope)
_EVENT_ENVELOPE: Final = msgspec.msgpack.Decoder(EventEnvelope)
_ENTRY: Final[msgspec.msgpack.Decoder[IdEntry]] = msgspec.msgpack.Decoder(IdEntry)
_REPLY_RECORD: Final[msgspec.msgpack.Decoder[Reply | IdEntry]] = msgspec.msgpack.Decoder(
    Reply | IdEntry
)
# Snapshot value headers (first byte): plain msgpack, or an lz4 block (size stored) of it.
# 0x00 and 0x01 were the layout that kept recent replies in the slot: read as stale.
_RAW: Final = b"\x03"
_LZ4: Final = b"\x04"
_OLD_LAYOUTS: Final = (b"\x00", b"\x01")
_MARKS: Final = msgspec.msgpack.Decoder(list[tuple[int, bytes, int]])
_CHECKPOINT_TAIL: Final = msgspec.msgpack.Decoder(list[Any])  # (marks, flows[, lost])
_FLOWS: Final = msgspec.msgpack.Decoder(Flows)
TOUCH_KEY: Final = b"\xff\x00touch"
"""A key no aggregate id, id key or checkpoint has (it is not UTF-8, nor a msgpack array):
a starting partition writes a tombstone under it to every partition it restores from, in a
committed transaction, so the broker's high watermark reaches the log end first (after an
unclean broker restart it can lag until the next append, hiding committed records).
Readers skip it; compaction keeps at most one."""
_CHECKPOINT: Final = b"\x02"  # a checkpoint record (see encode_checkpoint)
_CHECKPOINT_2: Final = b"\x05"  # a checkpoint record with the internal commands' offset
_COMPRESS_FROM: Final = 512  # bytes of msgpack; below this lz4 costs more than it saves


def encode_key(aggregate_id: str) -> bytes:
    """The record key of an aggregate (or of a reply: its command id)."""
    return aggregate_id.encode()


def decode_key(key: bytes) -> str:
    """The aggregate id (or command id) a record key names."""
    try:
        return key.decode()
    except UnicodeDecodeError as error:
        raise CodecError(f"record key is not UTF-8: {error}") from None


def encode_command(
    aggregate_id: str,
    command: msgspec.Struct,
    *,
    command_id: str,
    expected_version: int | None = None,
    reply_to: int | None = None,
    first_attempt_ms: int | None = None,
) -> bytes:
    """A command record's value; send it keyed by `encode_key(aggregate_id)`. Raises
    ValueError for what the service would refuse (see `topology.limits`)."""
    for name, value in (("command_id", command_id), ("aggregate_id", aggregate_id)):
        if not 0 < len(value) <= MAX_ID_CHARS:
            raise ValueError(f"{name} must be 1 to {MAX_ID_CHARS} characters, got {len(value)}")
    envelope = CommandEnvelope(
        command_id=command_id,
        aggregate_id=aggregate_id,
        type=_tag(type(command)),
        payload=msgspec.Raw(_ENCODER.encode(command)),
        expected_version=expected_version,
        reply_to=reply_to,
        first_attempt_ms=first_attempt_ms,
    )
    data = _ENCODER.encode(envelope)
    if len(data) > MAX_COMMAND_BYTES:
        raise ValueError(f"the command is {len(data)} bytes; the limit is {MAX_COMMAND_BYTES}")
    return data


def encode_id_key(aggregate_id: str, command_id: str) -> bytes:
    """The idempotency memory's key of a command id: ids are scoped to their aggregate. Also
    the key of a remembered reply record (so compaction keeps one reply per id)."""
    return _ENCODER.encode((aggregate_id, command_id))


def history_prefix(aggregate_id: str) -> bytes:
    """The prefix of every history index key of an aggregate: its id's length (2 bytes; an id
    is at most 1 KiB of UTF-8) then its id, so no id's prefix is another id's."""
    raw = aggregate_id.encode()
    return len(raw).to_bytes(2, "big") + raw


def encode_history_key(aggregate_id: str, sequence: int) -> bytes:
    """The history index key of an aggregate's event ``sequence``: the aggregate's prefix,
    then the sequence (8 bytes, big-endian), so keys sort by aggregate, then sequence."""
    return history_prefix(aggregate_id) + sequence.to_bytes(8, "big")


def _decoded(decoder: msgspec.msgpack.Decoder[T], data: bytes, what: str) -> T:
    """``decoder.decode(data)``; bytes it cannot read raise CodecError("not {what}: ...")."""
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as error:
        raise CodecError(f"not {what}: {error}") from None


def decode_event_envelope(data: bytes) -> EventEnvelope:
    """An event record's envelope, its payload left encoded. Raises CodecError."""
    return _decoded(_EVENT_ENVELOPE, data, "an event envelope")


def readdressed(value: bytes, reply_to: int | None) -> bytes:
    """An internal command record's value to send again on a retry: marked `resent`, and
    its origin (if any) answering on reply lane `reply_to` (the retry's)."""
    envelope = _COMMAND_ENVELOPE.decode(value)
    origin = envelope.origin
    if origin is not None:
        origin = msgspec.structs.replace(origin, reply_to=reply_to)
    return _ENCODER.encode(msgspec.structs.replace(envelope, origin=origin, resent=True))


def encode_internal_id_key(aggregate_id: str, command_id: str) -> bytes:
    """The idempotency memory's key of an internal command id: a three-element array, so no
    client command (its key is `encode_id_key`, two elements) can take an internal leg's
    place in the memory, whatever id it picks."""
    return _ENCODER.encode((aggregate_id, command_id, 0))


def command_fingerprint(envelope: CommandEnvelope) -> int:
    """A 63-bit hash of what a command asks (type, payload bytes, expected version): the same
    id sent again with another command has another fingerprint. Never 0."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(envelope.type.encode())
    digest.update(b"\x00")
    digest.update(envelope.payload)
    digest.update(b"\x00" + str(envelope.expected_version).encode())
    return (int.from_bytes(digest.digest(), "big") >> 1) or 1


def encode_reply(reply: Reply) -> bytes:
    """The value of a replies record that answers a client and is not remembered."""
    return _ENCODER.encode(reply)


def encode_entry(entry: IdEntry) -> bytes:
    """The value of an id memory entry, the replies record keyed by its id key (the memory's
    changelog; an `Answered` entry is also its client's answer)."""
    return _ENCODER.encode(entry)


def decode_entry(data: bytes) -> IdEntry:
    """The id memory entry a remembered replies record holds. Raises CodecError."""
    return _decoded(_ENTRY, data, "an id memory entry")


def decode_reply_record(data: bytes) -> Reply | IdEntry:
    """What a replies record holds: a reply that is not remembered, or an id memory entry.
    Raises CodecError."""
    return _decoded(_REPLY_RECORD, data, "a replies record")


def decode_answer(data: bytes) -> Reply | None:
    """The answer a replies record gives its client: its reply, remembered or not (None: an
    in-flight entry, which answers nothing yet). Raises CodecError."""
    record = _decoded(_REPLY_RECORD, data, "a replies record")
    if isinstance(record, Answered):
        return record.reply
    return None if isinstance(record, Deferred) else record


CHECKPOINT_KEY: Final = b""
"""The key of the checkpoint record in a snapshots partition (aggregate ids are non-empty)."""


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """The checkpoint record's value. Written in the same transaction as a batch's snapshots,
    so a snapshots partition read to its end says where its commands (and internal commands)
    partitions resume, what its clock was and its money flows (the latest checkpoint
    survives compaction)."""
    if min(checkpoint.next_offset, checkpoint.clock_ms, checkpoint.internal_offset) < 0:
        raise ValueError(f"a checkpoint's offsets and clock are >= 0, got {checkpoint}")
    marks = [(p, key, at) for p, (key, at) in sorted(checkpoint.remembered.items())]
    return (
        _CHECKPOINT_2
        + checkpoint.next_offset.to_bytes(8, "big")
        + checkpoint.clock_ms.to_bytes(8, "big")
        + checkpoint.internal_offset.to_bytes(8, "big")
        + _ENCODER.encode((marks, checkpoint.flows, sorted(checkpoint.lost)))
    )


def decode_checkpoint(data: bytes | None) -> Checkpoint:
    """The checkpoint a checkpoint record's value holds (an older 9-byte one has clock 0, an
    older 17-byte one no marks, one of the older layout no internal offset (0) and no
    flows). Raises CodecError."""
    if data is not None and data[:1] == _CHECKPOINT_2 and len(data) > 25:
        rest = _decoded(_CHECKPOINT_TAIL, data[25:], "a checkpoint's marks and flows")
        if len(rest) not in (2, 3):
            raise CodecError(f"not a checkpoint: a tail of {len(rest)} items")
        try:
            marks = msgspec.convert(rest[0], list[tuple[int, bytes, int]])
            flows = None if rest[1] is None else msgspec.convert(rest[1], Flows)
            lost = frozenset(msgspec.convert(rest[2], list[bytes]) if len(rest) == 3 else ())
        except msgspec.ValidationError as error:
            raise CodecError(f"not a checkpoint: {error}") from None
        return Checkpoint(
            int.from_bytes(data[1:9], "big"),
            int.from_bytes(data[9:17], "big"),
            {p: (key, at) for p, key, at in marks},
            int.from_bytes(data[17:25], "big"),
            flows,
            lost,
        )
    if data is None or len(data) < 9 or len(data) in range(10, 17) or data[:1] != _CHECKPOINT:
        raise CodecError(f"not a checkpoint: {data!r}")
    old: list[tuple[int, bytes, int]] = []
    if len(data) > 17:
        old = _decoded(_MARKS, data[17:], "a checkpoint's marks")
    return Checkpoint(
        int.from_bytes(data[1:9], "big"),
        int.from_bytes(data[9:17] or b"\x00", "big"),
        {p: (key, at) for p, key, at in old},
    )


def encode_flows(flows: Flows) -> bytes:
    """A partition's flows record value (state topic, key
    `topology.flows.FLOWS_KEY`)."""
    return _ENCODER.encode(flows)


def decode_flows(data: bytes) -> Flows:
    """The flows a flows record's value holds. Raises CodecError."""
    return _decoded(_FLOWS, data, "a flows record")


class Codec:
    """The codec of one aggregate: its commands, events, snapshots and views to bytes and
    back. Its decoders are built once, here, when the codec is made: whoever runs an
    aggregate makes its codec once and keeps it (a restore, a batch step, a shadow)."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        events = {_tag(cls): cls for cls in _members(aggregate.event_type)}
        internal = getattr(aggregate, "internal_command_type", None)
        self.internal_types = frozenset(
            () if internal is None else (_tag(cls) for cls in _members(internal))
        )
        commands = [
            *_members(aggregate.command_type),
            *(() if internal is None else _members(internal)),
        ]
        self._types = _Types(
            commands={_tag(cls): msgspec.msgpack.Decoder(cls) for cls in commands},
            event_classes=events,
            event_decoders={name: msgspec.msgpack.Decoder(cls) for name, cls in events.items()},
            event_names={cls: name for name, cls in events.items()},
            view=msgspec.msgpack.Decoder(aggregate.view_type),
            snapshot=msgspec.msgpack.Decoder(
                tuple[str, tuple[aggregate.state_type | None, int], int]  # type: ignore[name-defined]
            ),
        )

    def __reduce__(self) -> tuple[type[Codec], tuple[AnyAggregate]]:
        return Codec, (self.aggregate,)  # decoders are rebuilt where it is unpickled

    def decode_command(self, data: bytes | None) -> tuple[CommandEnvelope, Any]:
        """The envelope and the command of a command record's value.
        Raises CommandDecodeError for poison."""
        if data is None:
            raise CommandDecodeError(DecodeFailure.MALFORMED, "the record has no value", None)
        if len(data) > MAX_COMMAND_BYTES:
            raise CommandDecodeError(
                DecodeFailure.TOO_LARGE,
                f"{len(data)} bytes, over the {MAX_COMMAND_BYTES} limit",
                None,
            )
        try:
            envelope = _COMMAND_ENVELOPE.decode(data)
        except msgspec.DecodeError as error:
            raise CommandDecodeError(
                DecodeFailure.MALFORMED, f"not a command envelope: {error}", None
            ) from None
        except RecursionError:
            raise CommandDecodeError(DecodeFailure.MALFORMED, "nested too deeply", None) from None
        decoder = self._types.commands.get(envelope.type)
        if decoder is None:
            raise CommandDecodeError(
                DecodeFailure.UNKNOWN_COMMAND_TYPE,
                f"unknown command type {envelope.type!r}",
                envelope,
            )
        try:
            return envelope, decoder.decode(envelope.payload)
        except msgspec.DecodeError as error:
            raise CommandDecodeError(
                DecodeFailure.INVALID_PAYLOAD, f"invalid {envelope.type} payload: {error}", envelope
            ) from None
        except RecursionError:
            raise CommandDecodeError(
                DecodeFailure.INVALID_PAYLOAD,
                f"{envelope.type} payload nested too deeply",
                envelope,
            ) from None

    def encode_internal(
        self,
        aggregate_id: str,
        command: msgspec.Struct,
        *,
        command_id: str,
        origin: Origin | None,
        first_attempt_ms: int,
        redrive: bool = False,
    ) -> bytes:
        """An internal command record's value (for the internal topic, keyed by
        `encode_key(aggregate_id)`): a command envelope that may carry its saga's origin."""
        name = _tag(type(command))
        if name not in self.internal_types:
            raise TypeError(f"{name} is not an internal command of {self.aggregate.name}")
        envelope = CommandEnvelope(
            command_id=command_id,
            aggregate_id=aggregate_id,
            type=name,
            payload=msgspec.Raw(_ENCODER.encode(command)),
            first_attempt_ms=first_attempt_ms,
            origin=origin,
            schema_version=getattr(self.aggregate, "internal_schema_version", 1),
            redrive=redrive,
        )
        return _ENCODER.encode(envelope)

    def encode_event(
        self,
        aggregate_id: str,
        sequence: int,
        event: msgspec.Struct,
        *,
        command_id: str,
        timestamp_ms: int,
    ) -> bytes:
        """An event record's value at the aggregate's current event schema version."""
        name = self._types.event_names.get(type(event))
        if name is None:
            raise TypeError(f"{type(event).__name__} is not an event of {self.aggregate.name}")
        envelope = EventEnvelope(
            aggregate_id=aggregate_id,
            sequence=sequence,
            type=name,
            schema_version=self.aggregate.event_schema_version,
            payload=msgspec.Raw(_ENCODER.encode(event)),
            command_id=command_id,
            timestamp_ms=timestamp_ms,
        )
        return _ENCODER.encode(envelope)

    def decode_event(self, data: bytes) -> tuple[EventEnvelope, Any]:
        """The envelope (as stored) and the event, upcast to the aggregate's current event schema
        version. Upcasters run in a chain v → v + 1 → ... → current; a missing (type, v) upcaster
        means that type's layout did not change at v. Raises CodecError."""
        envelope = decode_event_envelope(data)
        current = self.aggregate.event_schema_version
        stored = envelope.schema_version
        if stored > current:
            raise CodecError(
                f"{envelope.type} event has schema version {stored}, newer than {current}"
            )
        types = self._types
        cls = types.event_classes.get(envelope.type)
        if cls is None:
            raise CodecError(f"unknown event type {envelope.type!r}")
        try:
            if stored == current:
                return envelope, types.event_decoders[envelope.type].decode(envelope.payload)
            payload = _ANY.decode(envelope.payload)
            if not isinstance(payload, dict):
                raise CodecError(f"{envelope.type} payload is not a map")
            for version in range(stored, current):
                upcaster = self.aggregate.upcasters.get((envelope.type, version))
                if upcaster is not None:
                    payload = upcaster(payload)
            return envelope, msgspec.convert(payload, cls)
        except msgspec.DecodeError as error:
            raise CodecError(
                f"invalid {envelope.type} payload at schema version {stored}: {error}"
            ) from None

    def encode_snapshot(self, snapshot: Snapshot) -> bytes:
        """A snapshot record's value, keyed by the aggregate id: a 3-byte header (format, state
        schema version as u16) then msgpack, lz4-compressed only where that pays (large slots)."""
        if snapshot.schema_version != self.aggregate.state_schema_version:
            raise ValueError(
                f"snapshot schema version {snapshot.schema_version} is not {self.aggregate.name}"
                f"'s state schema version {self.aggregate.state_schema_version}"
            )
        slot = snapshot.slot
        body = _ENCODER.encode(
            (snapshot.aggregate_id, (slot.state, slot.version), snapshot.events_offset)
        )
        header = snapshot.schema_version.to_bytes(2, "big")
        if len(body) >= _COMPRESS_FROM:
            import lz4.block  # the service's extra: a client never writes or reads snapshots

            compressed: bytes = lz4.block.compress(body, store_size=True)
            if len(compressed) * 10 < len(body) * 9:  # keep it only if it saves 10 %
                return _LZ4 + header + compressed
        return _RAW + header + body

    def snapshot_record(
        self, aggregate_id: str, slot: Slot, events_offset: int
    ) -> tuple[bytes, bytes]:
        """The (key, value) of ``slot``'s snapshot record at the current state schema version,
        reflecting the events below ``events_offset``: the one way a snapshot record is built."""
        snapshot = Snapshot(self.aggregate.state_schema_version, aggregate_id, slot, events_offset)
        return encode_key(aggregate_id), self.encode_snapshot(snapshot)

    def is_current_snapshot(self, data: bytes) -> bool:
        """Whether a snapshot value is of this layout and the aggregate's current state schema,
        told from its 3-byte header without decoding (else it is stale: rebuild from events)."""
        return data[:1] in (_RAW, _LZ4) and data[
            1:3
        ] == self.aggregate.state_schema_version.to_bytes(2, "big")

    def decode_snapshot(self, data: bytes) -> Snapshot:
        """The snapshot a snapshot record's value holds, its state typed as the aggregate's.
        Raises StaleSnapshotError for another state schema version, CodecError for garbage."""
        if len(data) < 4:
            raise CodecError("not a snapshot: too short")
        if data[:1] in _OLD_LAYOUTS:
            raise StaleSnapshotError("a snapshot of an older layout (it kept replies in the slot)")
        if data[:1] not in (_RAW, _LZ4):
            raise CodecError("not a snapshot: unknown header")
        schema_version = int.from_bytes(data[1:3], "big")
        if schema_version != self.aggregate.state_schema_version:
            raise StaleSnapshotError(
                f"snapshot has state schema version {schema_version}, "
                f"{self.aggregate.name} is at {self.aggregate.state_schema_version}"
            )
        import lz4.block  # the service's extra, as in encode_snapshot

        try:
            body = data[3:] if data[:1] == _RAW else lz4.block.decompress(data[3:])
            wire = self._types.snapshot.decode(body)
        except (lz4.block.LZ4BlockError, msgspec.DecodeError) as error:
            raise CodecError(f"not a valid {self.aggregate.name} snapshot: {error}") from None
        aggregate_id, (state, version), events_offset = wire
        return Snapshot(schema_version, aggregate_id, Slot(state, version), events_offset)

    def encode_view(self, state: Any, version: int) -> bytes:
        """A state record's value: the msgpack of the aggregate's public view of `state`."""
        return _ENCODER.encode(self.aggregate.view(state, version))

    def decode_view(self, data: bytes) -> Any:
        """The public view a state record's value holds."""
        return _decoded(self._types.view, data, f"a {self.aggregate.name} view")


@dataclass(frozen=True, slots=True)
class _Types:
    """An aggregate's decoders and type names, built once per ``Codec``."""

    commands: dict[str, msgspec.msgpack.Decoder[Any]]
    event_classes: dict[str, type[Any]]
    event_decoders: dict[str, msgspec.msgpack.Decoder[Any]]
    event_names: dict[type[Any], str]
    view: msgspec.msgpack.Decoder[Any]
    snapshot: msgspec.msgpack.Decoder[Any]


def _members(union: Any) -> tuple[type[Any], ...]:
    return get_args(union) or (union,)


def _tag(cls: type[Any]) -> str:
    config = getattr(cls, "__struct_config__", None)
    if config is None or not isinstance(config.tag, str):
        raise TypeError(f"{cls.__name__} must be a msgspec Struct tagged with its type name")
    return config.tag
