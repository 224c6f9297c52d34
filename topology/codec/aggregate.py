"""`Codec`: the record formats that depend on an aggregate's types (commands, events,
snapshots, views, the history index's waypoints), bound to one aggregate. Each format's layout
lives in its own module; this class builds their codecs once, as its attributes ``commands``,
``events``, ``snapshots``, ``views`` and ``waypoints``: ``codec.events.encode(...)``,
``codec.snapshots.record(...)``."""

from __future__ import annotations

from topology.codec.commands import CommandCodec
from topology.codec.events import EventCodec
from topology.codec.snapshots import SnapshotCodec
from topology.codec.state import ViewCodec
from topology.codec.waypoints import WaypointCodec
from topology.protocol import AnyAggregate

__all__ = ["Codec"]


class Codec:
    """The codec of one aggregate. Its decoders are built when it is made: whoever runs an
    aggregate makes its codec once and keeps it (a restore, a batch step, a shadow)."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        self.commands = CommandCodec(aggregate)
        self.events = EventCodec(aggregate)
        self.snapshots = SnapshotCodec(aggregate)
        self.views = ViewCodec(aggregate)
        self.waypoints = WaypointCodec(aggregate)
        self.internal_types = self.commands.internal_types
        """The type tags of the aggregate's internal commands (none unless it is a saga)."""

    def __reduce__(self) -> tuple[type[Codec], tuple[AnyAggregate]]:
        return Codec, (self.aggregate,)  # decoders are rebuilt where it is unpickled
