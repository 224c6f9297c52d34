"""The records the flow reads and writes, as msgspec Structs. Bytes live in `codec` only.

Command and event envelopes are maps (self-describing; events are kept forever). Replies, id
memory entries and snapshots are internal and hot, so they are arrays: new fields go last,
with defaults; the records of the replies topic are tagged (a `Reply`, or an `IdEntry`). None
of these Structs can be part of a reference cycle, so they are not tracked by the GC.
"""

from typing import Annotated, Any, Self, TypeAlias

import msgspec

from topology.flows import Flows
from topology.ids import MAX_PRINCIPAL_CHARS
from topology.limits import MAX_ID_CHARS

__all__ = [
    "Answered",
    "Checkpoint",
    "CommandEnvelope",
    "Deferred",
    "EventEnvelope",
    "IdEntry",
    "Origin",
    "Position",
    "Reply",
    "Slot",
    "Snapshot",
]

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
_NonNegative = Annotated[int, msgspec.Meta(ge=0)]
_Principal = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PRINCIPAL_CHARS)]


class Origin(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """On an internal command, the client command that started its saga and how to answer
    it: the client's command id, account, reply lane, first attempt and fingerprint, the
    account's version after it, and (`final`) the encoded `Answered` entry that the leg
    that ends the saga remembers and sends when an earlier leg already decided the answer
    (a refusal)."""

    command_id: str
    aggregate_id: str
    reply_to: int | None
    first_attempt_ms: int
    fingerprint: int
    version: int
    final: bytes | None = None


class CommandEnvelope(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A command as sent to the commands topic, keyed by `aggregate_id`. `type` names the
    command Struct that `payload` encodes; `reply_to` is the reply lane the sender listens on
    (None: no reply wanted). `first_attempt_ms` is when the sender first tried this command id
    (epoch ms, the same on every retry; None: the time the partition first reads it): the
    idempotency window runs from it. `resent` marks an internal command sent again on a
    client's retry (only ever answered from the id memory, never executed).
    `schema_version` is the aggregate's internal command schema version an internal command
    was written with (None: 1, written before there were versions): a worker reads the
    versions up to its own, and stops before a newer one until it is upgraded. `redrive`
    marks an operator's settlement of a set-aside leg (see `topology.step.admission`).
    `principal` names who sent it (an API token's name, a client's or an operator's; never a
    secret; None: not said): an internal command carries the principal of the command that
    caused it, and every event records the principal of its command."""

    command_id: _Id
    aggregate_id: _Id
    type: str
    payload: msgspec.Raw
    expected_version: _NonNegative | None = None
    reply_to: _NonNegative | None = None
    first_attempt_ms: _NonNegative | None = None
    origin: Origin | None = None
    resent: bool = False
    schema_version: _NonNegative | None = None
    redrive: bool = False
    principal: _Principal | None = None


class Position(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A point in one partition's committed history: `seq` is its commit sequence
    (`Checkpoint.seq`), +1 per committed batch. A state at `Position(p, n)` reflects every
    batch of partition p up to the n-th; positions of one partition only grow."""

    partition: _NonNegative
    seq: _NonNegative

    def __str__(self) -> str:
        return f"{self.partition}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Self:
        """The position written as `"<partition>:<seq>"` (`str(position)`). Raises
        ValueError."""
        partition, sep, seq = text.partition(":")
        if not sep or not partition.isdigit() or not seq.isdigit():
            raise ValueError(f"a position is '<partition>:<seq>', not {text!r}")
        return cls(int(partition), int(seq))


class Reply(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="reply"):
    """The answer to one command: accepted (`code` None) or refused with `code` and a
    `message` for humans. `version` is the aggregate's version after the command (unchanged
    when refused). Made by its named constructors, `accept` and `refuse`. `code` is a member
    of the service's refusal vocabulary; on the wire it is its value, a string (msgspec
    cannot decode a union of enums), which `topology.codes.Vocabulary.code_of` turns back
    into its enum member. `position` is where the commit that made the reply put its
    partition (a read asking for at least it sees the command; a reply repeated from the id
    memory repeats its first position); None in a reply written before there were
    positions (such a record, one element shorter, still decodes)."""

    command_id: str
    aggregate_id: str
    accepted: bool
    code: str | None
    message: str
    version: int
    position: Position | None = None

    @classmethod
    def accept(
        cls, *, command_id: str, aggregate_id: str, version: int, position: Position | None
    ) -> Self:
        """The answer to an accepted command."""
        return cls(
            command_id=command_id,
            aggregate_id=aggregate_id,
            accepted=True,
            code=None,
            message="",
            version=version,
            position=position,
        )

    @classmethod
    def refuse(
        cls,
        *,
        command_id: str,
        aggregate_id: str,
        code: str,
        message: str,
        version: int,
        position: Position | None,
    ) -> Self:
        """The answer to a refused command."""
        return cls(
            command_id=command_id,
            aggregate_id=aggregate_id,
            accepted=False,
            code=code,
            message=message,
            version=version,
            position=position,
        )


class Answered(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="answered"):
    """The id memory's entry of a decided command id: its `reply` (a retry within the window
    gets it again), and the first attempt (epoch ms) and fingerprint (a hash of the command's
    type, payload and expected version) that the idempotency judge compares a retry with."""

    reply: Reply
    first_attempt_ms: int
    fingerprint: int


class Deferred(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="deferred"):
    """The id memory's entry of a command id whose saga is in flight: its answer is deferred
    to the saga's last leg, so it has none yet. `resend`: the internal commands the saga's
    first step sent, as (target aggregate id, command record value), to send again on a
    retry (a leg's own entry has none)."""

    first_attempt_ms: int
    fingerprint: int
    resend: list[tuple[str, bytes]] = msgspec.field(default_factory=list)


IdEntry: TypeAlias = Answered | Deferred
"""What the id memory holds for a command id (and writes to its changelog, the replies
topic, keyed by the id key): an answered command, or one whose answer is deferred while its
saga is in flight."""


class EventEnvelope(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One event on the events topic, keyed by `aggregate_id`. `sequence` is the aggregate's
    version after this event (1 for its first); `payload` encodes the event Struct named by
    `type` at `schema_version`; `command_id` is the command that caused it and `principal`
    who sent that command (None: not said; absent from the record then)."""

    aggregate_id: str
    sequence: int
    type: str
    schema_version: int
    payload: msgspec.Raw
    command_id: str
    timestamp_ms: int
    principal: str | None = None


class Slot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Everything kept per aggregate in the snapshots: its state (None: does not exist; must
    not refer back to the slot) and its version (number of events applied). Command ids are
    remembered apart from the slots (the idempotency memory), so a slot exists only for an
    aggregate that has events."""

    state: Any
    version: int


class Snapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The latest slot of one aggregate, on the compacted snapshots topic. Invariant: every
    event of the aggregate with sequence > slot.version is at an events-partition offset
    >= `events_offset`, so catch-up replays from there and skips sequences <= slot.version.
    `schema_version` is the aggregate's state schema version when written."""

    schema_version: int
    aggregate_id: str
    slot: Slot
    events_offset: int


class Checkpoint(msgspec.Struct, frozen=True, gc=False):
    """Where a partition resumes: the next command offset to read, and the partition's clock
    (the largest batch time committed, epoch ms), so that time never runs backwards for the
    idempotency window when the partition moves to a node whose clock is behind.
    `remembered` marks, per replies partition, the id key of the last remembered reply
    written there (and its batch time): an id memory is caught up with this checkpoint once
    it holds every such key (a replies partition is read in order), so a restore never runs
    with an id memory behind its state. `internal_offset` is the next offset to read of the
    partition's internal commands (0 in a checkpoint written before there were any);
    `flows` the partition's cumulative money flows (`topology.flows`), when kept;
    `lost` the id keys of the internal commands set aside here and not settled yet (an
    operator's `redrive` of one is done once, whenever it comes); `seq` the partition's
    commit sequence, +1 per committed batch (ticks and set-asides included; 0 in a checkpoint
    written before there was one), kept by checkpoints that commit no batch (a generation's
    seal, an operator's move): the `Position` its replies carry."""

    next_offset: int
    clock_ms: int = 0
    remembered: dict[int, tuple[bytes, int]] = msgspec.field(default_factory=dict)
    internal_offset: int = 0
    flows: Flows | None = None
    lost: frozenset[bytes] = frozenset()
    seq: _NonNegative = 0
