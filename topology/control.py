"""The coordinator's desired state: the records of the compacted control topic, pure.

The control topic (`TopicLayout.control`, one partition, compacted) holds the latest record per
key, so reading it from the beginning to its end gives the whole desired state:

- ``service``: the application is serving (or was stopped) with this partition count;
- ``partition/{p}``: partition p's snapshot generation, whether its commands are paused, the
  node the coordinator placed its writer on (and each of its standbys), and how many writers
  it has started for it;
- ``rebuild/{p}``: the latest rebuild of partition p and how far it got;
- ``routing``: the published routing table (absent until the application's slots are
  assigned, `docs/design-repartition.md`);
- ``repartition``: the latest repartition (from N to M partitions) and each of its moves.

Invariants: a partition's generation only grows, and it changes only after the live actor
switched to it (the old generation stays valid until then); a record is only ever written by
the coordinator (whose producer is transactional, so a zombie coordinator is fenced).
This module is the control topic's codec; nothing else encodes or decodes its bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import msgspec

from topology.routing import RoutingTable

__all__ = [
    "ControlDecodeError",
    "ControlRecord",
    "DesiredState",
    "MoveRecord",
    "MoveState",
    "PartitionRecord",
    "RebuildPhase",
    "RebuildRecord",
    "RepartitionPhase",
    "RepartitionRecord",
    "RoutingRecord",
    "ServiceRecord",
    "adoptable",
    "application_partitions",
    "decode_control",
    "drained_partitions",
    "encode_control",
    "key_of",
    "partition_key",
    "rebuild_key",
    "serving_partitions",
]

SERVICE_KEY: Final = "service"
ROUTING_KEY: Final = "routing"
REPARTITION_KEY: Final = "repartition"


class RebuildPhase(StrEnum):
    """Where a rebuild is. REPLAYING: a shadow folds the events into the new generation
    while the live actor serves; SWITCHING: the partition is paused for the tail and the
    switch; DONE and FAILED are final (the old generation is kept on failure)."""

    REPLAYING = "replaying"
    SWITCHING = "switching"
    DONE = "done"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (RebuildPhase.REPLAYING, RebuildPhase.SWITCHING)


class ServiceRecord(msgspec.Struct, frozen=True, tag="service"):
    """The application as a whole: serving or stopped, its partition count, and its number
    of slots S (0: not assigned yet, and every key goes to `partition_for(key, partitions)`;
    once assigned, S never changes). Without slots the count is fixed for the topics'
    lifetime; with them it only grows (`application_partitions`, `adoptable`)."""

    partitions: int
    serving: bool
    updated_at: float = 0.0
    slots: int = 0


class RoutingRecord(msgspec.Struct, frozen=True, tag="routing"):
    """The published routing table: the owner of every slot and the version of its last
    move."""

    table: RoutingTable
    updated_at: float = 0.0


class PartitionRecord(msgspec.Struct, frozen=True, tag="partition"):
    """Partition ``partition``'s desired state. ``node_id`` is where the coordinator last
    placed its actor (None: not yet placed); ``starts`` counts the actors it created for it
    (each one beyond the first replaced an actor Ray could not bring back); ``nodes`` is where
    it last placed each standby member (member → node). ``writer`` is the member that writes
    (member 0 until a takeover) and ``epoch`` counts the takeovers: a takeover records
    ``writer=m, epoch=e+1`` before it promotes member m, and every other member starts as a
    standby."""

    partition: int
    generation: int = 0
    paused: bool = False
    node_id: str | None = None
    starts: int = 0
    nodes: dict[int, str] = {}
    writer: int = 0
    epoch: int = 0


class RebuildRecord(msgspec.Struct, frozen=True, tag="rebuild"):
    """The latest rebuild of ``partition`` into snapshot generation ``generation``."""

    partition: int
    generation: int
    phase: RebuildPhase
    requested_at: float
    attempts: int = 0
    events: int = 0
    replay_seconds: float = 0.0
    pause_ms: float = 0.0
    finished_at: float = 0.0
    error: str | None = None

    @property
    def rate(self) -> float:
        """Events replayed per second (0 before any)."""
        return self.events / self.replay_seconds if self.replay_seconds > 0 else 0.0


def application_partitions(service: ServiceRecord | None, configured: int) -> int:
    """The application's partition count: `configured` (`Settings.partitions`) for an
    application never recorded, the recorded one once its slots are assigned (it may have
    grown since, and the configured count only creates an application). Raises ValueError
    for an application without slots recorded with another count: without a routing table
    its keys cannot follow another count."""
    if service is None or service.partitions == configured or service.slots:
        return configured if service is None else service.partitions
    raise ValueError(
        f"the application has {service.partitions} partitions, not {configured}, and no "
        "slots: start a repartition (its first step assigns slots) or use a new application id"
    )


def serving_partitions(partitions: int, repartition: RepartitionRecord | None) -> int:
    """The application's serving count: the partitions meant to own slots. It is the latest
    repartition's target (``to_partitions``, under way or done), or where a failed one
    started (``from_partitions``: the next repartition plans from the table as it stands),
    or, before any repartition, the recorded count ``partitions``. It is never above
    ``partitions``: topics never shrink, so a shrink lowers this count and not the recorded
    one (`docs/design-repartition.md`, **Shrink**)."""
    if repartition is None:
        return partitions
    if repartition.phase is RepartitionPhase.FAILED:
        return min(partitions, repartition.from_partitions)
    return min(partitions, repartition.to_partitions)


def drained_partitions(
    partitions: int, table: RoutingTable | None, repartition: RepartitionRecord | None
) -> tuple[int, ...]:
    """The **drained** partitions of an application recorded with ``partitions``: at or
    above its serving count and owning no slot in the published ``table`` (a partition a
    shrink under way still empties owns slots, and is not drained yet). Without a table
    (no slots assigned) none is."""
    if table is None:
        return ()
    counts = table.counts(partitions)
    serving = serving_partitions(partitions, repartition)
    return tuple(p for p in range(serving, partitions) if counts[p] == 0)


def adoptable(service: ServiceRecord | None, partitions: int, slots: int) -> bool:
    """Whether the recorded application may take `partitions` partitions with `slots` slots:
    False when it has them already (nothing to do). Raises ValueError when it may not: no
    slots assigned (or other ones than `slots`), fewer partitions than recorded (a count
    never shrinks here), or more than S."""
    if service is None or not service.slots:
        raise ValueError("the application has no slots assigned: assign them first")
    if slots != service.slots:
        raise ValueError(f"the application has {service.slots} slots, not {slots}")
    if not service.partitions <= partitions <= slots:
        raise ValueError(
            f"the application has {service.partitions} partitions and {slots} slots: it can "
            f"grow to {service.partitions}..{slots}, not to {partitions}"
        )
    return partitions != service.partitions


class RepartitionPhase(StrEnum):
    """Where a repartition is. GROWING: the topics gain partitions and the new writers
    start (nothing to do for a count the topics have, a shrink's or a regrowth into drained
    partitions: the phase only waits for the writers and plans); MOVING: the planned moves
    run; DONE and FAILED (with a reason) are final."""

    GROWING = "growing"
    MOVING = "moving"
    DONE = "done"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (RepartitionPhase.GROWING, RepartitionPhase.MOVING)


class MoveState(StrEnum):
    """Where one move is, in its only order: PLANNED → REQUESTED (its `MoveSlots` is on
    internal[source]) → HANDED_OFF (the source's slot record gave the slots) → INSTALLED (the
    target's slot record holds them) → PUBLISHED (the routing table names the target)."""

    PLANNED = "planned"
    REQUESTED = "requested"
    HANDED_OFF = "handed_off"
    INSTALLED = "installed"
    PUBLISHED = "published"

    @property
    def busy(self) -> bool:
        """Requested and not yet published: its source is taken."""
        return self in (MoveState.REQUESTED, MoveState.HANDED_OFF, MoveState.INSTALLED)

    def reached(self, state: MoveState) -> bool:
        """Whether a move in this state has reached ``state`` (or gone past it)."""
        return _MOVE_ORDER.index(self) >= _MOVE_ORDER.index(state)


_MOVE_ORDER: Final = tuple(MoveState)


class MoveRecord(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One move of a repartition: ``slots`` (ascending) from ``source`` to ``target`` at table
    version ``version`` (0 until requested; fresh: above every version before it). The
    ``*_at`` are wall-clock times of each transition (0: not yet); the pauses are the legs'
    batch times as their partitions report them (None: not reported). Encoded as an array
    (about 70 bytes a move; new fields go at the end, with defaults)."""

    move_id: str
    source: int
    target: int
    slots: tuple[int, ...]
    version: int = 0
    state: MoveState = MoveState.PLANNED
    requested_at: float = 0.0
    handed_off_at: float = 0.0
    installed_at: float = 0.0
    published_at: float = 0.0
    handoff_pause_ms: float | None = None
    install_pause_ms: float | None = None


class RepartitionRecord(msgspec.Struct, frozen=True, tag="repartition", kw_only=True):
    """The latest repartition: number ``number`` of the application, from ``from_partitions``
    to ``to_partitions`` over ``slots`` slots, keeping up to ``parallel`` sources busy. Its
    moves are the plan, in plan order, recorded once when the phase turns MOVING.
    ``base_version`` is the highest version handed out before this repartition: its moves'
    versions are above it."""

    number: int
    from_partitions: int
    to_partitions: int
    slots: int
    phase: RepartitionPhase
    requested_at: float
    parallel: int = 2
    base_version: int = 0
    moves: tuple[MoveRecord, ...] = ()
    finished_at: float = 0.0
    error: str | None = None

    @property
    def top_version(self) -> int:
        """The highest version this repartition handed out (or ``base_version``)."""
        return max([self.base_version, *(m.version for m in self.moves)])

    def done(self) -> int:
        """How many of its moves are published."""
        return sum(m.state is MoveState.PUBLISHED for m in self.moves)


ControlRecord = ServiceRecord | PartitionRecord | RebuildRecord | RoutingRecord | RepartitionRecord

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(ControlRecord)


class ControlDecodeError(ValueError):
    """A control record that does not decode (written by something else)."""


def partition_key(partition: int) -> str:
    return f"partition/{partition}"


def rebuild_key(partition: int) -> str:
    return f"rebuild/{partition}"


def key_of(record: ControlRecord) -> str:
    """The control-topic key a record is stored under."""
    match record:
        case ServiceRecord():
            return SERVICE_KEY
        case PartitionRecord(partition=p):
            return partition_key(p)
        case RebuildRecord(partition=p):
            return rebuild_key(p)
        case RoutingRecord():
            return ROUTING_KEY
        case RepartitionRecord():
            return REPARTITION_KEY
    raise TypeError(f"not a control record: {record!r}")  # pragma: no cover


def encode_control(record: ControlRecord) -> tuple[bytes, bytes]:
    """The (key, value) of a control record."""
    return key_of(record).encode(), _ENCODER.encode(record)


def decode_control(value: bytes) -> ControlRecord:
    """The record a control value holds. Raises ControlDecodeError."""
    try:
        record: ControlRecord = _DECODER.decode(value)
    except msgspec.DecodeError as error:
        raise ControlDecodeError(f"not a control record: {error}") from None
    return record


@dataclass
class DesiredState:
    """The latest control record per key, as read from the topic (or kept by the writer)."""

    service: ServiceRecord | None = None
    partitions: dict[int, PartitionRecord] = field(default_factory=dict)
    rebuilds: dict[int, RebuildRecord] = field(default_factory=dict)
    routing: RoutingRecord | None = None
    repartition: RepartitionRecord | None = None

    @classmethod
    def of(cls, records: Iterable[ControlRecord]) -> DesiredState:
        """The state ``records`` leave, applied in order (a restarted coordinator's view)."""
        desired = cls()
        for record in records:
            desired.apply(record)
        return desired

    def apply(self, record: ControlRecord) -> None:
        """Install one record (later records replace earlier ones of the same key)."""
        match record:
            case ServiceRecord():
                self.service = record
            case PartitionRecord(partition=p):
                self.partitions[p] = record
            case RebuildRecord(partition=p):
                self.rebuilds[p] = record
            case RoutingRecord():
                self.routing = record
            case RepartitionRecord():
                self.repartition = record

    def partition(self, partition: int) -> PartitionRecord:
        """Partition ``partition``'s record, or the default one (generation 0, running)."""
        return self.partitions.get(partition) or PartitionRecord(partition)

    def table(self) -> RoutingTable | None:
        """The published routing table, once the application's slots are assigned (None:
        not yet, and every key goes to `partition_for`)."""
        if self.service is None or not self.service.slots or self.routing is None:
            return None
        return self.routing.table
