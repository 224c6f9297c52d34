"""Recovery as a pure plan plus pure folds; the actor only seeks, consumes and feeds them.

Restore reads snapshots[p] from `low` to `high` into memory (`apply_snapshot_record`), then,
if a snapshot generation is behind the event log, catches up by replaying events[p] from the
smallest `events_offset` seen (`apply_event_record` skips what the snapshots already hold).
A rebuild is the same fold from an empty map and events offset 0.
"""

from dataclasses import dataclass

from topology.codec import (
    CodecError,
    RecentReply,
    Reply,
    Slot,
    decode_event,
    decode_key,
    decode_snapshot,
)
from topology.protocol import Aggregate

__all__ = ["RestorePlan", "SequenceGapError", "apply_event_record", "apply_snapshot_record"]


class SequenceGapError(ValueError):
    """An event's sequence skips ahead of the aggregate's version: events are missing."""


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """Read one partition from `low` (its low watermark, or a start offset) up to `high` (its
    high watermark when restore began). A position is the next offset to read. Transaction
    markers occupy offsets that are never delivered, so the executor also treats reaching the
    partition's end as done."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"need 0 <= low <= high, got low={self.low} high={self.high}")

    def done(self, position: int) -> bool:
        """Whether everything up to `high` has been read."""
        return position >= self.high

    def remaining(self, position: int) -> int:
        """How many offsets are still to read (an upper bound on records)."""
        return max(0, self.high - max(position, self.low))


def apply_snapshot_record(
    aggregate: Aggregate, states: dict[str, Slot], key: bytes | None, value: bytes | None
) -> int | None:
    """Install one snapshot record into `states` (a tombstone deletes the key). Returns the
    snapshot's `events_offset` (None for a tombstone). Raises StaleSnapshotError, CodecError."""
    if key is None:
        raise CodecError("snapshot record without a key")
    aggregate_id = decode_key(key)
    if value is None:
        states.pop(aggregate_id, None)
        return None
    snapshot = decode_snapshot(aggregate, value)
    if snapshot.aggregate_id != aggregate_id:
        raise CodecError(f"snapshot of {snapshot.aggregate_id!r} under key {aggregate_id!r}")
    states[aggregate_id] = snapshot.slot
    return snapshot.events_offset


def apply_event_record(
    aggregate: Aggregate, states: dict[str, Slot], value: bytes, recent_limit: int
) -> bool:
    """Fold one event record into `states`; returns whether it was applied. An event whose
    sequence is <= the slot's version is already reflected and skipped; one that skips ahead
    raises SequenceGapError. The accepted reply of the event's command is remembered (last
    `recent_limit`) so a retry after restore is still deduplicated; rejections are not events
    and cannot be rebuilt."""
    if recent_limit < 1:
        raise ValueError(f"recent_limit must be >= 1, got {recent_limit}")
    envelope, event = decode_event(aggregate, value)
    aggregate_id = envelope.aggregate_id
    slot = states.get(aggregate_id)
    version = 0 if slot is None else slot.version
    if envelope.sequence <= version:
        return False
    if envelope.sequence != version + 1:
        raise SequenceGapError(
            f"{aggregate_id!r}: event sequence {envelope.sequence} follows version {version}"
        )
    state = aggregate.evolve(None if slot is None else slot.state, event)
    reply = Reply(envelope.command_id, aggregate_id, True, None, "", envelope.sequence)
    recent = () if slot is None else slot.recent
    if recent and recent[-1].command_id == envelope.command_id:
        recent = recent[:-1]  # a later event of the same command supersedes the reply
    recent = (*recent, RecentReply.of(reply))[-recent_limit:]
    states[aggregate_id] = Slot(state, envelope.sequence, recent)
    return True
