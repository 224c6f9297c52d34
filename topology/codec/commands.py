"""Command records: a `CommandEnvelope` (msgpack map) whose payload is the command Struct,
keyed by `topology.codec.keys.encode_key(aggregate_id)`. A client's command is encoded by
`encode_command`; an aggregate's internal commands (saga legs) and the decoding of any command
go through `CommandCodec`, bound to the aggregate's command types. A record that does not
decode is poison, classified by `topology.codes.PoisonCode`."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from topology.codec.wire import ENCODER, CodecError, type_tag, union_members
from topology.codes import PoisonCode
from topology.envelopes import CommandEnvelope, Origin
from topology.ids import check_principal
from topology.limits import MAX_COMMAND_BYTES, MAX_ID_CHARS
from topology.protocol import AnyAggregate

__all__ = [
    "CommandCodec",
    "CommandDecodeError",
    "command_fingerprint",
    "encode_command",
    "readdressed",
]

_COMMAND_ENVELOPE: Final = msgspec.msgpack.Decoder(CommandEnvelope)


class CommandDecodeError(CodecError):
    """A poison command. `code` is `PoisonCode.MALFORMED` or `TOO_LARGE` (no envelope could be
    read), `UNKNOWN_COMMAND_TYPE` or `INVALID_PAYLOAD`; `envelope` is set when it could be
    read."""

    def __init__(self, code: PoisonCode, message: str, envelope: CommandEnvelope | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.envelope = envelope


def encode_command(
    aggregate_id: str,
    command: msgspec.Struct,
    *,
    command_id: str,
    expected_version: int | None = None,
    reply_to: int | None = None,
    first_attempt_ms: int | None = None,
    principal: str | None = None,
) -> bytes:
    """A command record's value; send it keyed by `encode_key(aggregate_id)`, sent by
    `principal` (None: not said). Raises ValueError for what the service would refuse (see
    `topology.limits`, `topology.ids`)."""
    for name, value in (("command_id", command_id), ("aggregate_id", aggregate_id)):
        if not 0 < len(value) <= MAX_ID_CHARS:
            raise ValueError(f"{name} must be 1 to {MAX_ID_CHARS} characters, got {len(value)}")
    if principal is not None:
        check_principal(principal)
    envelope = CommandEnvelope(
        command_id=command_id,
        aggregate_id=aggregate_id,
        type=type_tag(type(command)),
        payload=msgspec.Raw(ENCODER.encode(command)),
        expected_version=expected_version,
        reply_to=reply_to,
        first_attempt_ms=first_attempt_ms,
        principal=principal,
    )
    data = ENCODER.encode(envelope)
    if len(data) > MAX_COMMAND_BYTES:
        raise ValueError(f"the command is {len(data)} bytes; the limit is {MAX_COMMAND_BYTES}")
    return data


def readdressed(value: bytes, reply_to: int | None) -> bytes:
    """An internal command record's value to send again on a retry: marked `resent`, and
    its origin (if any) answering on reply lane `reply_to` (the retry's)."""
    envelope = _COMMAND_ENVELOPE.decode(value)
    origin = envelope.origin
    if origin is not None:
        origin = msgspec.structs.replace(origin, reply_to=reply_to)
    return ENCODER.encode(msgspec.structs.replace(envelope, origin=origin, resent=True))


def command_fingerprint(envelope: CommandEnvelope) -> int:
    """A 63-bit hash of what a command asks (type, payload bytes, expected version): the same
    id sent again with another command has another fingerprint. Never 0."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(envelope.type.encode())
    digest.update(b"\x00")
    digest.update(envelope.payload)
    digest.update(b"\x00" + str(envelope.expected_version).encode())
    return (int.from_bytes(digest.digest(), "big") >> 1) or 1


class CommandCodec:
    """An aggregate's commands (client and internal) to bytes and back; its decoders are
    built once, here."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        internal = getattr(aggregate, "internal_command_type", None)
        internals = () if internal is None else union_members(internal)
        self.internal_types = frozenset(type_tag(cls) for cls in internals)
        self._decoders = {
            type_tag(cls): msgspec.msgpack.Decoder(cls)
            for cls in (*union_members(aggregate.command_type), *internals)
        }

    def decode(self, data: bytes | None) -> tuple[CommandEnvelope, Any]:
        """The envelope and the command of a command record's value.
        Raises CommandDecodeError for poison."""
        if data is None:
            raise CommandDecodeError(PoisonCode.MALFORMED, "the record has no value", None)
        if len(data) > MAX_COMMAND_BYTES:
            raise CommandDecodeError(
                PoisonCode.TOO_LARGE,
                f"{len(data)} bytes, over the {MAX_COMMAND_BYTES} limit",
                None,
            )
        try:
            envelope = _COMMAND_ENVELOPE.decode(data)
        except msgspec.DecodeError as error:
            raise CommandDecodeError(
                PoisonCode.MALFORMED, f"not a command envelope: {error}", None
            ) from None
        except RecursionError:
            raise CommandDecodeError(PoisonCode.MALFORMED, "nested too deeply", None) from None
        decoder = self._decoders.get(envelope.type)
        if decoder is None:
            raise CommandDecodeError(
                PoisonCode.UNKNOWN_COMMAND_TYPE,
                f"unknown command type {envelope.type!r}",
                envelope,
            )
        try:
            return envelope, decoder.decode(envelope.payload)
        except msgspec.DecodeError as error:
            raise CommandDecodeError(
                PoisonCode.INVALID_PAYLOAD, f"invalid {envelope.type} payload: {error}", envelope
            ) from None
        except RecursionError:
            raise CommandDecodeError(
                PoisonCode.INVALID_PAYLOAD,
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
        principal: str | None = None,
    ) -> bytes:
        """An internal command record's value (for the internal topic, keyed by
        `encode_key(aggregate_id)`): a command envelope that may carry its saga's origin, and
        the principal of the command that caused it."""
        name = type_tag(type(command))
        if name not in self.internal_types:
            raise TypeError(f"{name} is not an internal command of {self.aggregate.name}")
        envelope = CommandEnvelope(
            command_id=command_id,
            aggregate_id=aggregate_id,
            type=name,
            payload=msgspec.Raw(ENCODER.encode(command)),
            first_attempt_ms=first_attempt_ms,
            origin=origin,
            schema_version=getattr(self.aggregate, "internal_schema_version", 1),
            redrive=redrive,
            principal=principal,
        )
        return ENCODER.encode(envelope)
