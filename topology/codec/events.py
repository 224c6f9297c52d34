"""Event records: an `EventEnvelope` (msgpack map) whose payload is the event Struct at the
schema version the envelope names, keyed by the aggregate id. `EventCodec` is bound to an
aggregate's event types; older events are upcast on read through the aggregate's upcaster
chain. `decode_event_envelope` reads the envelope alone, for any aggregate."""

from typing import Any, Final

import msgspec

from topology.codec.wire import ENCODER, CodecError, decoded, type_tag, union_members
from topology.envelopes import EventEnvelope
from topology.protocol import AnyAggregate

__all__ = ["EventCodec", "decode_event_envelope"]

_ANY: Final = msgspec.msgpack.Decoder()
_EVENT_ENVELOPE: Final = msgspec.msgpack.Decoder(EventEnvelope)


def decode_event_envelope(data: bytes) -> EventEnvelope:
    """An event record's envelope, its payload left encoded. Raises CodecError."""
    return decoded(_EVENT_ENVELOPE, data, "an event envelope")


class EventCodec:
    """An aggregate's events to bytes and back; its decoders are built once, here."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        self._classes = {type_tag(cls): cls for cls in union_members(aggregate.event_type)}
        self._decoders = {name: msgspec.msgpack.Decoder(cls) for name, cls in self._classes.items()}
        self._names = {cls: name for name, cls in self._classes.items()}

    def encode(
        self,
        aggregate_id: str,
        sequence: int,
        event: msgspec.Struct,
        *,
        command_id: str,
        timestamp_ms: int,
        principal: str | None = None,
    ) -> bytes:
        """An event record's value at the aggregate's current event schema version, caused
        by command `command_id` of `principal`."""
        name = self._names.get(type(event))
        if name is None:
            raise TypeError(f"{type(event).__name__} is not an event of {self.aggregate.name}")
        envelope = EventEnvelope(
            aggregate_id=aggregate_id,
            sequence=sequence,
            type=name,
            schema_version=self.aggregate.event_schema_version,
            payload=msgspec.Raw(ENCODER.encode(event)),
            command_id=command_id,
            timestamp_ms=timestamp_ms,
            principal=principal,
        )
        return ENCODER.encode(envelope)

    def decode(self, data: bytes) -> tuple[EventEnvelope, Any]:
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
        cls = self._classes.get(envelope.type)
        if cls is None:
            raise CodecError(f"unknown event type {envelope.type!r}")
        try:
            if stored == current:
                return envelope, self._decoders[envelope.type].decode(envelope.payload)
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
