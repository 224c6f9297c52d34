"""Snapshot records, keyed by the aggregate id: a 3-byte header, then the msgpack of
``(aggregate_id, (state, version), events_offset)``. The header is the format byte (0x03
plain msgpack, 0x04 an lz4 block of it with its size stored) and the aggregate's state schema
version (u16, big-endian). A snapshot of another state schema version is stale: rebuild from
events. `SnapshotCodec` is bound to an aggregate's state type."""

from typing import Any, Final

import msgspec

from topology.codec.keys import encode_key
from topology.codec.wire import ENCODER, CodecError
from topology.envelopes import Slot, Snapshot
from topology.protocol import AnyAggregate

__all__ = ["SnapshotCodec", "StaleSnapshotError"]

_RAW: Final = b"\x03"
_LZ4: Final = b"\x04"
_COMPRESS_FROM: Final = 512  # bytes of msgpack; below this lz4 costs more than it saves


class StaleSnapshotError(CodecError):
    """A snapshot written with another state schema version: rebuild from events instead."""


class SnapshotCodec:
    """An aggregate's snapshots to bytes and back; its decoder is built once, here."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        self._header = aggregate.state_schema_version.to_bytes(2, "big")
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(
            tuple[str, tuple[aggregate.state_type | None, int], int]  # type: ignore[name-defined]
        )

    def encode(self, snapshot: Snapshot) -> bytes:
        """A snapshot record's value, lz4-compressed only where that pays (large slots)."""
        if snapshot.schema_version != self.aggregate.state_schema_version:
            raise ValueError(
                f"snapshot schema version {snapshot.schema_version} is not {self.aggregate.name}"
                f"'s state schema version {self.aggregate.state_schema_version}"
            )
        slot = snapshot.slot
        body = ENCODER.encode(
            (snapshot.aggregate_id, (slot.state, slot.version), snapshot.events_offset)
        )
        if len(body) >= _COMPRESS_FROM:
            import lz4.block  # the service's extra: a client never writes or reads snapshots

            compressed: bytes = lz4.block.compress(body, store_size=True)
            if len(compressed) * 10 < len(body) * 9:  # keep it only if it saves 10 %
                return _LZ4 + self._header + compressed
        return _RAW + self._header + body

    def record(self, aggregate_id: str, slot: Slot, events_offset: int) -> tuple[bytes, bytes]:
        """The (key, value) of ``slot``'s snapshot record at the current state schema version,
        reflecting the events below ``events_offset``: the one way a snapshot record is built."""
        snapshot = Snapshot(self.aggregate.state_schema_version, aggregate_id, slot, events_offset)
        return encode_key(aggregate_id), self.encode(snapshot)

    def is_current(self, data: bytes) -> bool:
        """Whether a snapshot value is of this layout and the aggregate's current state schema,
        told from its 3-byte header without decoding (else it is stale: rebuild from events)."""
        return data[:1] in (_RAW, _LZ4) and data[1:3] == self._header

    def decode(self, data: bytes) -> Snapshot:
        """The snapshot a snapshot record's value holds, its state typed as the aggregate's.
        Raises StaleSnapshotError for another state schema version, CodecError for anything
        not of this layout."""
        if len(data) < 4:
            raise CodecError(f"not a snapshot: {len(data)} bytes, shorter than a header")
        if data[:1] not in (_RAW, _LZ4):
            raise CodecError(
                f"not a snapshot: format byte {data[:1].hex()}, expected 03 (msgpack) or 04 (lz4)"
            )
        schema_version = int.from_bytes(data[1:3], "big")
        if schema_version != self.aggregate.state_schema_version:
            raise StaleSnapshotError(
                f"snapshot has state schema version {schema_version}, "
                f"{self.aggregate.name} is at {self.aggregate.state_schema_version}"
            )
        import lz4.block  # the service's extra, as in encode

        try:
            body = data[3:] if data[:1] == _RAW else lz4.block.decompress(data[3:])
            wire = self._decoder.decode(body)
        except (lz4.block.LZ4BlockError, msgspec.DecodeError) as error:
            raise CodecError(f"not a valid {self.aggregate.name} snapshot: {error}") from None
        aggregate_id, (state, version), events_offset = wire
        return Snapshot(schema_version, aggregate_id, Slot(state, version), events_offset)
