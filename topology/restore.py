"""Recovery's pure folds; the executors (`actors.restore`,
`actors.shadow`, `actors.replay`) only consume and feed them.

`apply_snapshot_record` installs snapshot records as decoded slots (a shadow rebuild resuming
its generation: `resume_rebuild`); `apply_event_record` folds events, skipping what the slots
already hold, so a rebuild is the fold from an empty map and events offset 0, and a resumed
one replays from the smallest `events_offset` its snapshots carry. A repartition's markers
(`topology.moves`) are followed: a departure drops the account (its later events are on
another partition), an arrival installs the snapshot it carries (its earlier events are on
another partition). `TailEnd` says where a rebuild's last replay, during the switch's pause,
stops. `actors.shadow` and the simulator (`eventledger.sim.shadow`) both run these.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY
from topology.codec.keys import TOUCH_KEY, decode_key
from topology.codec.wire import CodecError
from topology.envelopes import Slot
from topology.moves import (
    SLOT_RECORD_KEY,
    RecordKind,
    decode_arrival,
    decode_departure,
    record_kind,
)

__all__ = [
    "Resumed",
    "SequenceGapError",
    "TailEnd",
    "apply_event_record",
    "apply_event_records",
    "apply_snapshot_record",
    "resume_rebuild",
]


class SequenceGapError(ValueError):
    """An event's sequence skips ahead of the aggregate's version: events are missing."""


def apply_snapshot_record(
    codec: Codec, states: dict[str, Slot], key: bytes | None, value: bytes | None
) -> int | None:
    """Install one snapshot record into `states` (a tombstone deletes the key). Returns the
    snapshot's `events_offset` (None for a tombstone). Raises StaleSnapshotError, CodecError."""
    if key is None:
        raise CodecError("snapshot record without a key")
    if key in (TOUCH_KEY, SLOT_RECORD_KEY):  # not an aggregate's (the slot record: apart)
        return None
    aggregate_id = decode_key(key)
    if value is None:
        states.pop(aggregate_id, None)
        return None
    snapshot = codec.snapshots.decode(value)
    if snapshot.aggregate_id != aggregate_id:
        raise CodecError(f"snapshot of {snapshot.aggregate_id!r} under key {aggregate_id!r}")
    states[aggregate_id] = snapshot.slot
    return snapshot.events_offset


def apply_event_record(
    codec: Codec,
    states: dict[str, Slot],
    value: bytes,
    headers: Sequence[tuple[str, bytes]] | None = None,
) -> bool:
    """Fold one event record (with its `headers`) into `states`; returns whether it was
    applied. An event whose sequence is <= the slot's version is already reflected and
    skipped; one that skips ahead raises SequenceGapError. A departure marker drops its
    account; an arrival marker installs its snapshot unless the slot is already at or past
    it. Any other record of the flow raises CodecError. (Command ids are remembered apart,
    by the id memory.)"""
    kind = record_kind(headers)
    if kind is not None:
        return _apply_marker(codec, states, kind, value)
    envelope, event = codec.events.decode(value)
    aggregate_id = envelope.aggregate_id
    slot = states.get(aggregate_id)
    version = 0 if slot is None else slot.version
    if envelope.sequence <= version:
        return False
    if envelope.sequence != version + 1:
        raise SequenceGapError(
            f"{aggregate_id!r}: event sequence {envelope.sequence} follows version {version}"
        )
    state = codec.aggregate.evolve(None if slot is None else slot.state, event)
    states[aggregate_id] = Slot(state, envelope.sequence)
    return True


def _apply_marker(codec: Codec, states: dict[str, Slot], kind: RecordKind, value: bytes) -> bool:
    if kind is RecordKind.DEPARTED:
        return states.pop(decode_departure(value).aggregate_id, None) is not None
    if kind is not RecordKind.ARRIVED:
        raise CodecError(f"a {kind} record does not belong on an events topic")
    arrival = decode_arrival(value)
    slot = states.get(arrival.aggregate_id)
    if slot is not None and slot.version >= arrival.sequence:
        return False
    snapshot = codec.snapshots.decode(arrival.snapshot)
    if snapshot.aggregate_id != arrival.aggregate_id or snapshot.slot.version != arrival.sequence:
        raise CodecError(
            f"arrival of {arrival.aggregate_id!r} at {arrival.sequence} carries the snapshot of "
            f"{snapshot.aggregate_id!r} at {snapshot.slot.version}"
        )
    states[arrival.aggregate_id] = snapshot.slot
    return True


EventRecord = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]] | None]
"""An events record's key, value and headers (None: none), as a reader hands it over."""


def apply_event_records(
    codec: Codec,
    states: dict[str, Slot],
    records: Iterable[EventRecord],
    changed: set[str] | None = None,
) -> int:
    """Fold event records, in offset order, into `states`; returns how many were applied
    (already reflected ones are skipped) and adds the changed aggregate ids to `changed` (an
    account that a departure marker dropped too: it is absent from `states`)."""
    applied = 0
    for key, value, headers in records:
        if value is not None and apply_event_record(codec, states, value, headers):
            applied += 1
            if changed is not None and key is not None:
                changed.add(decode_key(key))
    return applied


@dataclass
class Resumed:
    """What a rebuild's earlier checkpoints in its generation hold: the slots, their records
    as written (key → value), and the events offset to resume from (0: nothing)."""

    states: dict[str, Slot] = field(default_factory=dict)
    encoded: dict[bytes, bytes] = field(default_factory=dict)
    position: int = 0


def resume_rebuild(codec: Codec, records: Iterable[tuple[bytes | None, bytes | None]]) -> Resumed:
    """Fold a rebuild's generation (its snapshot records, in offset order) back: the largest
    stamp is where it resumes. A checkpoint record there is the live partition's, written
    after a switch: not the rebuild's, skipped. Raises CodecError for a record that does not
    decode."""
    resumed = Resumed()
    for key, value in records:
        if key == CHECKPOINT_KEY:
            continue
        stamp = apply_snapshot_record(codec, resumed.states, key, value)
        if stamp is not None and key is not None and value is not None:
            resumed.position = max(resumed.position, stamp)
            resumed.encoded[key] = value
        elif key is not None:
            resumed.encoded.pop(key, None)
    return resumed


@dataclass
class TailEnd:
    """Where a rebuild's last replay stops, during the switch's pause: the end of
    `events[p]` as last read (the last stable offset), and never below `at_least`, the end of
    the events the paused partition committed (`Paused.events_end`, from delivery reports).
    A commit returns before Kafka writes its markers, so a read of the end made right after
    the pause may lie below the last batch; only `at_least` holds the replay to it.

    The replay is done once its tail has read to the end it can see (past the last batch's
    marker, which `at_least` stops short of) at or past `end`; the hand-over's position is
    then the tail's, which a switch finds equal to the end it reads."""

    at_least: int
    end: int = 0

    def aim(self, read_end: int) -> int:
        """The end to replay to, given the end just read."""
        self.end = max(read_end, self.at_least)
        return self.end

    def reached(self, position: int, at_end: bool) -> bool:
        """Whether a tail whose next offset is `position` is done (`at_end`: it has read to
        the end it can see)."""
        return at_end and position >= self.end
