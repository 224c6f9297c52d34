"""`Codec`: the record formats that depend on an aggregate's types (commands, events,
snapshots, views), bound to one aggregate. Each format's layout lives in its own module; this
class only builds their decoders once and names their operations for the aggregate's users."""

from __future__ import annotations

from typing import Any

import msgspec

from topology.codec.commands import CommandCodec
from topology.codec.events import EventCodec
from topology.codec.snapshots import SnapshotCodec
from topology.codec.state import ViewCodec
from topology.envelopes import CommandEnvelope, EventEnvelope, Origin, Slot, Snapshot
from topology.protocol import AnyAggregate

__all__ = ["Codec"]


class Codec:
    """The codec of one aggregate. Its decoders are built when it is made: whoever runs an
    aggregate makes its codec once and keeps it (a restore, a batch step, a shadow)."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        self._commands = CommandCodec(aggregate)
        self._events = EventCodec(aggregate)
        self._snapshots = SnapshotCodec(aggregate)
        self._views = ViewCodec(aggregate)
        self.internal_types = self._commands.internal_types
        """The type tags of the aggregate's internal commands (none unless it is a saga)."""

    def __reduce__(self) -> tuple[type[Codec], tuple[AnyAggregate]]:
        return Codec, (self.aggregate,)  # decoders are rebuilt where it is unpickled

    def decode_command(self, data: bytes | None) -> tuple[CommandEnvelope, Any]:
        """See `CommandCodec.decode`: raises CommandDecodeError for poison."""
        return self._commands.decode(data)

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
        """See `CommandCodec.encode_internal`."""
        return self._commands.encode_internal(
            aggregate_id,
            command,
            command_id=command_id,
            origin=origin,
            first_attempt_ms=first_attempt_ms,
            redrive=redrive,
        )

    def encode_event(
        self,
        aggregate_id: str,
        sequence: int,
        event: msgspec.Struct,
        *,
        command_id: str,
        timestamp_ms: int,
    ) -> bytes:
        """See `EventCodec.encode`."""
        return self._events.encode(
            aggregate_id, sequence, event, command_id=command_id, timestamp_ms=timestamp_ms
        )

    def decode_event(self, data: bytes) -> tuple[EventEnvelope, Any]:
        """See `EventCodec.decode`: upcasts to the current schema; raises CodecError."""
        return self._events.decode(data)

    def encode_snapshot(self, snapshot: Snapshot) -> bytes:
        """See `SnapshotCodec.encode`."""
        return self._snapshots.encode(snapshot)

    def snapshot_record(
        self, aggregate_id: str, slot: Slot, events_offset: int
    ) -> tuple[bytes, bytes]:
        """See `SnapshotCodec.record`: the one way a snapshot record is built."""
        return self._snapshots.record(aggregate_id, slot, events_offset)

    def is_current_snapshot(self, data: bytes) -> bool:
        """See `SnapshotCodec.is_current`."""
        return self._snapshots.is_current(data)

    def decode_snapshot(self, data: bytes) -> Snapshot:
        """See `SnapshotCodec.decode`: raises StaleSnapshotError, CodecError."""
        return self._snapshots.decode(data)

    def encode_view(self, state: Any, version: int) -> bytes:
        """See `ViewCodec.encode`."""
        return self._views.encode(state, version)

    def decode_view(self, data: bytes) -> Any:
        """See `ViewCodec.decode`: raises CodecError."""
        return self._views.decode(data)
