"""The generic flow's codes, as enums: every code the flow gives a command, named once here.

A reply's code is one of a service's `Vocabulary`: the flow's refusals (`FlowCode`, `IdCode`,
`PoisonCode`) and its aggregate's own rejection codes (the ledger's `RejectionCode`, which
the flow never imports). On the wire a code is its string value; `Vocabulary.parse` turns it
back into its enum member at the seam and says clearly when no enum of the family names it.
`SkipCode` names why a duplicate got no answer: an outcome, never a reply's code;
`ReadCode` why a read is not answered, never a reply's code either.
"""

from enum import StrEnum
from typing import Generic, TypeAlias, TypeVar

from topology.envelopes import Reply

__all__ = [
    "FlowCode",
    "FlowRefusal",
    "IdCode",
    "PoisonCode",
    "ReadCode",
    "SkipCode",
    "UnknownCodeError",
    "Vocabulary",
]


class PoisonCode(StrEnum):
    """Why a command record is dead-lettered: the first four are found by the codec (the
    record does not decode), the rest by the batch step (it does not belong here)."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNKNOWN_COMMAND_TYPE = "unknown_command_type"
    INVALID_PAYLOAD = "invalid_payload"
    KEY_MISMATCH = "key_mismatch"
    WRONG_PARTITION = "wrong_partition"
    INVALID_REPLY_TO = "invalid_reply_to"
    UNPROCESSABLE = "unprocessable"  # set aside after its transactions kept aborting
    NOT_INTERNAL = "not_internal"  # a client command type on the internal topic
    FLOW_RECORD = "flow_record"  # a record of the flow's own (`eventledger-record`) out of place


class IdCode(StrEnum):
    """Refusals of the idempotency memory (`topology.idempotency.judge`). None of them is
    remembered: they change nothing, and the same command gets the same refusal."""

    EXPIRED = "expired"
    ID_REUSED = "id_reused"
    FIRST_ATTEMPT_IN_FUTURE = "first_attempt_in_future"


class FlowCode(StrEnum):
    """Refusals by the flow itself, before the aggregate decides, or of what it decided."""

    VERSION_CONFLICT = "version_conflict"
    """The expected version is not the aggregate's version (optimistic concurrency: checked
    against the slot's version)."""

    FORGED_INTERNAL_COMMAND = "forged_internal_command"
    """An internal command type (or an envelope with an origin) on the public commands
    topic: only the service sends internal commands, on the internal topic."""

    STATE_TOO_LARGE = "state_too_large"
    """A command whose events would make its aggregate's snapshot or view larger than
    `topology.limits.MAX_SNAPSHOT_BYTES` (a record Kafka would refuse): none of its events is
    applied. A leg that would is set aside instead (`unprocessable`), its money in flight."""


class SkipCode(StrEnum):
    """Why a duplicate got no answer (the outcome's code; counted, never a reply's)."""

    IN_FLIGHT = "in_flight"
    """A retry of an id whose answer is deferred while its saga is in flight (its id
    memory entry is `Deferred`): the saga's internal commands are sent again instead."""

    FORGOTTEN_LEG = "forgotten_leg"
    """A leg sent again on a retry that the id memory no longer holds: it was done long ago
    (its original precedes it on the same internal partition), so it is skipped."""

    STALE_MOVE = "stale_move"
    """A move's request for slots this partition does not own below the move's version, or
    a handoff part of a move it has installed: a copy (the move was made), skipped."""

    NOT_SET_ASIDE = "not_set_aside"
    """An operator's forced leg whose leg the checkpoint does not name as set aside (it was
    done, or is too old to tell): nothing is forced."""


class ReadCode(StrEnum):
    """Why a read of the committed state is not answered (a problem's code, never a
    reply's)."""

    POSITION_NOT_REACHED = "position_not_reached"
    """The read asked for at least a version or position (read-your-writes) that the
    partition's committed state did not reach within its wait: not committed (yet)."""


FlowRefusal: TypeAlias = FlowCode | IdCode | PoisonCode
"""A refusal code the flow gives whatever the aggregate."""

DomainCodeT = TypeVar("DomainCodeT", bound=StrEnum)


class UnknownCodeError(ValueError):
    """A code that no enum of a vocabulary names (a reply of a newer service, or of a service
    of another aggregate)."""


class Vocabulary(Generic[DomainCodeT]):
    """The refusal codes a service's replies may carry: its aggregate's (`domain`) and the
    flow's. Invariant: no two members of the family share a value (checked when made)."""

    def __init__(self, domain: type[DomainCodeT]) -> None:
        self.enums: tuple[type[StrEnum], ...] = (domain, FlowCode, IdCode, PoisonCode)
        self._members: dict[str, DomainCodeT | FlowRefusal] = {}
        for member in (*domain, *FlowCode, *IdCode, *PoisonCode):
            held = self._members.setdefault(member.value, member)
            if held is not member:
                raise ValueError(
                    f"code {member.value!r} is both {type(held).__name__}.{held.name} and "
                    f"{type(member).__name__}.{member.name}"
                )

    def parse(self, code: str) -> DomainCodeT | FlowRefusal:
        """The member of the family whose value is `code`. Raises UnknownCodeError."""
        member = self._members.get(code)
        if member is None:
            names = ", ".join(enum.__name__ for enum in self.enums)
            raise UnknownCodeError(
                f"unknown refusal code {code!r}: none of {names} names it (a reply of a newer "
                "service, or of a service of another aggregate?)"
            )
        return member

    def code_of(self, reply: Reply) -> DomainCodeT | FlowRefusal | None:
        """The typed code of `reply` (None: accepted). Raises UnknownCodeError."""
        return None if reply.code is None else self.parse(reply.code)
