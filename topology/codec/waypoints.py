"""Waypoint values of the history index (``actors.history``): an aggregate's state after one of
its events, the msgpack of the aggregate's state type, under ``keys.encode_waypoint_key``.

A waypoint is derived: the fold of the aggregate's events up to it with ``evolve`` and the
upcasters of the aggregate's current state and event schema versions. ``WaypointCodec.fold``
names that fold (aggregate name, state schema version, event schema version); an index whose
waypoints were folded under another name is rebuilt from the events, never read.
`WaypointCodec` is bound to an aggregate's state type."""

from typing import Any

import msgspec

from topology.codec.wire import ENCODER, decoded
from topology.protocol import AnyAggregate

__all__ = ["WaypointCodec"]


class WaypointCodec:
    """An aggregate's waypoint states to bytes and back; its decoder is built once, here."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(aggregate.state_type)
        self.fold: bytes = ENCODER.encode(
            (aggregate.name, aggregate.state_schema_version, aggregate.event_schema_version)
        )
        """The fold this codec's waypoints come from (stored beside them in the index)."""

    def encode(self, state: Any) -> bytes:
        """A waypoint's value: the msgpack of the (existing, non-None) state."""
        return ENCODER.encode(state)

    def decode(self, data: bytes) -> Any:
        """The state a waypoint's value holds. Raises CodecError."""
        return decoded(self._decoder, data, f"a {self.aggregate.name} waypoint")
