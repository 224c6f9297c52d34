"""What the batch step reads and writes: input records, output records, outcomes, and the
result of one batch.

The record types are frozen msgspec Structs, not dataclasses: several are built per command
and a frozen dataclass costs about ten times as much to construct. They hold only ints, str,
bytes and header sequences, never a reference cycle, so the GC does not track them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec

from topology.envelopes import Slot
from topology.flows import Flows
from topology.moves import SlotRecord
from topology.topics import TopicKind

__all__ = [
    "UNREMEMBERED_KEY_PREFIX",
    "BatchResult",
    "InRecord",
    "OutRecord",
    "Outcome",
    "OutcomeKind",
    "origin",
]

UNREMEMBERED_KEY_PREFIX = b"\xff"
"""Prefixes the record key of a reply that is not remembered (a refusal by the memory itself,
a dead letter), so that compaction of the replies topic never lets it replace the remembered
reply of the same id (remembered replies are keyed by `encode_id_key`, a msgpack array)."""


class OutcomeKind(StrEnum):
    """What happened to one command record."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    DLQ = "dlq"
    FORWARDED = "forwarded"  # sent on to the partition that owns its slot


class InRecord(msgspec.Struct, frozen=True, gc=False):
    """A record read from the commands topic (`internal`: from the internal topic).
    `forwarded_ms`: a client command another partition forwarded here (read there at that
    clock); it came on the internal topic but is handled as the client command it is."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    internal: bool = False
    forwarded_ms: int | None = None

    @property
    def leg(self) -> bool:
        """Whether the record is an internal command (read from the internal topic and not
        a forwarded client command)."""
        return self.internal and self.forwarded_ms is None


class OutRecord(msgspec.Struct, frozen=True, gc=False):
    """A record to produce. `headers` is a fresh list the caller may extend (trace context);
    `source_offset` names the command that caused it (`origin`; None: snapshots, state)."""

    kind: TopicKind
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    source_offset: int | None


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """One command record's fate, for metrics and tracing; `headers` are the input record's
    headers so the caller can continue the sender's trace. `outcome` is an OutcomeKind."""

    offset: int
    command_id: str | None
    aggregate_id: str | None
    command_type: str | None
    outcome: str
    code: str | None
    headers: Sequence[tuple[str, bytes]]
    internal: bool = False  # read from the internal topic
    principal: str | None = None  # who sent the command, when it says


def origin(offset: int, internal: bool) -> int:
    """How outputs name the record that caused them (`OutRecord.source_offset`): its
    offset, negated minus one for the internal topic, so the two topics never collide."""
    return -offset - 1 if internal else offset


@dataclass(frozen=True)
class BatchResult:
    """Everything one transaction produces, plus what to install once it commits. `changed`
        holds the last slot of every aggregate the batch changed (only aggregates with new events);
        `internal` the internal commands for other partitions; `next_offset` and
        `next_internal_offset` where the commands and internal topics resume;
        snapshots and views have one record per changed aggregate; `held` says why the batch
        stopped before an internal command of a newer schema version (the offsets then stop
        before it: read again once upgraded). `remembered` holds the
        (id key, reply value) of every command id decided in this batch, for the id memory, and
        `last_remembered` the id key of the last of them written to each replies partition (the
        changelog), for the checkpoint's marks. A batch that hands slots off or installs them
    ends at that record: `slot_record` is the partition's new one (produced to the snapshots
    before the checkpoint), `departed` the aggregates it handed off (their tombstones are in
    `snapshots` and `views`), `clock_ms` the source's clock when an install raised this
    partition's to it, `move_id` the move made."""

    replies: list[OutRecord]
    events: list[OutRecord]
    snapshots: list[OutRecord]
    views: list[OutRecord]
    dlq: list[OutRecord]
    changed: dict[str, Slot]
    remembered: dict[bytes, bytes]
    last_remembered: dict[int, bytes]
    outcomes: list[Outcome]
    next_offset: int
    internal: list[OutRecord] = field(default_factory=list)
    next_internal_offset: int = 0
    flows: Flows | None = None  # the partition's flows after this batch (None: unchanged)
    held: str | None = None  # why the batch stopped before a record it cannot read yet
    lost: frozenset[bytes] | None = None  # the partition's lost legs after it (None: same)
    slot_record: SlotRecord | None = None  # its slot record after a move (None: unchanged)
    departed: frozenset[str] = frozenset()  # aggregates handed off: out of the state
    clock_ms: int | None = None  # the clock an install raised the partition's to (None: not)
    move_id: str | None = None  # the move this batch handed off or installed (None: none)
