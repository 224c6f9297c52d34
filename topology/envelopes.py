"""The records the flow reads and writes, as msgspec Structs. Bytes live in `codec` only.

Command and event envelopes are maps (self-describing; events are kept forever). Replies and
snapshots are internal and hot, so they are arrays: new fields go last, with defaults. None
of these Structs can be part of a reference cycle, so they are not tracked by the GC.
"""

from typing import Annotated, Any

import msgspec

__all__ = [
    "CommandEnvelope",
    "EventEnvelope",
    "RecentReply",
    "Reply",
    "Slot",
    "Snapshot",
]

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class CommandEnvelope(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A command as sent to the commands topic, keyed by `aggregate_id`. `type` names the
    command Struct that `payload` encodes; `reply_to` is the replies partition the sender
    listens on (None: no reply wanted)."""

    command_id: _NonEmpty
    aggregate_id: _NonEmpty
    type: str
    payload: msgspec.Raw
    expected_version: _NonNegative | None = None
    reply_to: _NonNegative | None = None


class Reply(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The answer to one command, keyed by `command_id`. `version` is the aggregate's version
    after the command (unchanged when rejected); `code` is None exactly when accepted."""

    command_id: str
    aggregate_id: str
    accepted: bool
    code: str | None
    message: str
    version: int


class EventEnvelope(msgspec.Struct, frozen=True, gc=False):
    """One event on the events topic, keyed by `aggregate_id`. `sequence` is the aggregate's
    version after this event (1 for its first); `payload` encodes the event Struct named by
    `type` at `schema_version`; `command_id` is the command that caused it."""

    aggregate_id: str
    sequence: int
    type: str
    schema_version: int
    payload: msgspec.Raw
    command_id: str
    timestamp_ms: int


class RecentReply(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A reply remembered so that a retried command id gets the same reply again. Compact:
    it lives in every snapshot, so the aggregate id (the slot's) is not repeated here."""

    command_id: str
    accepted: bool
    code: str | None
    message: str
    version: int

    @classmethod
    def of(cls, reply: Reply) -> "RecentReply":
        return cls(reply.command_id, reply.accepted, reply.code, reply.message, reply.version)

    def reply(self, aggregate_id: str) -> Reply:
        """The reply as it was first sent."""
        return Reply(
            self.command_id, aggregate_id, self.accepted, self.code, self.message, self.version
        )


class Slot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Everything kept per aggregate: its state (None: does not exist; must not refer back to
    the slot), its version (number of events applied) and its most recent replies, oldest
    first, at most the configured number (`Settings.recent_ids_per_aggregate`)."""

    state: Any
    version: int
    recent: tuple[RecentReply, ...] = ()


class Snapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The latest slot of one aggregate, on the compacted snapshots topic. Invariant: every
    event of the aggregate with sequence > slot.version is at an events-partition offset
    >= `events_offset`, so catch-up replays from there and skips sequences <= slot.version.
    `schema_version` is the aggregate's state schema version when written."""

    schema_version: int
    aggregate_id: str
    slot: Slot
    events_offset: int
