"""Recovery's pure folds; the executors (`actors.restore`,
`actors.shadow`, `actors.replay`) only consume and feed them.

`apply_snapshot_record` installs snapshot records as decoded slots (a shadow rebuild resuming
its generation); `apply_event_record` folds events, skipping what the slots already hold, so a
rebuild is the fold from an empty map and events offset 0, and a resumed one replays from the
smallest `events_offset` its snapshots carry.
"""

from topology.codec.aggregate import Codec
from topology.codec.keys import TOUCH_KEY, decode_key
from topology.codec.wire import CodecError
from topology.envelopes import Slot

__all__ = ["SequenceGapError", "apply_event_record", "apply_snapshot_record"]


class SequenceGapError(ValueError):
    """An event's sequence skips ahead of the aggregate's version: events are missing."""


def apply_snapshot_record(
    codec: Codec, states: dict[str, Slot], key: bytes | None, value: bytes | None
) -> int | None:
    """Install one snapshot record into `states` (a tombstone deletes the key). Returns the
    snapshot's `events_offset` (None for a tombstone). Raises StaleSnapshotError, CodecError."""
    if key is None:
        raise CodecError("snapshot record without a key")
    if key == TOUCH_KEY:  # see TOUCH_KEY: not an aggregate's
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


def apply_event_record(codec: Codec, states: dict[str, Slot], value: bytes) -> bool:
    """Fold one event record into `states`; returns whether it was applied. An event whose
    sequence is <= the slot's version is already reflected and skipped; one that skips ahead
    raises SequenceGapError. (Command ids are remembered apart, by the id memory.)"""
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
