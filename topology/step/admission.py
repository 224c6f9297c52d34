"""Admission: what becomes of a decoded command before its aggregate decides it. Pure: it
reads the record, the envelope and what the id memory holds for the id, and says whether the
command is dead-lettered, refused by the flow, answered from memory, skipped or executed.

Invariant: every client command id is judged by `topology.idempotency.judge` before it is
executed; a leg (an internal command) is never refused by the id memory (its debit has
committed, so it must land whenever it arrives), only answered from it or skipped.
"""

from typing import NamedTuple

import msgspec

from topology.codec.commands import command_fingerprint
from topology.codec.keys import encode_id_key, encode_internal_id_key, encode_key
from topology.codec.replies import decode_entry
from topology.codes import FlowCode, IdCode, PoisonCode, SkipCode
from topology.envelopes import CommandEnvelope, IdEntry
from topology.idempotency import IdVerdict, judge
from topology.step.context import StepContext
from topology.step.records import InRecord

__all__ = [
    "Admission",
    "Attempt",
    "DeadLetter",
    "Execute",
    "Refuse",
    "Repeat",
    "Skip",
    "admit",
    "id_key",
    "id_refusal",
]


class Attempt(NamedTuple):
    """A command's first attempt (epoch ms) and fingerprint: what the id memory keeps."""

    first_attempt_ms: int
    fingerprint: int


class DeadLetter(msgspec.Struct, frozen=True, gc=False):
    """The record does not belong here: dead-lettered."""

    code: PoisonCode
    message: str


class Refuse(msgspec.Struct, frozen=True, gc=False):
    """Refused by the flow itself (not remembered: it changes nothing)."""

    code: FlowCode | IdCode
    message: str


class Repeat(msgspec.Struct, frozen=True, gc=False):
    """A retry: answered from memory (`remembered`, the entry's value; `earlier`, the
    entry)."""

    remembered: bytes
    earlier: IdEntry


class Skip(msgspec.Struct, frozen=True, gc=False):
    """Counted as a duplicate with `code`, never answered."""

    code: SkipCode


class Execute(msgspec.Struct, frozen=True, gc=False):
    """Decided by the aggregate. `redrive`: an operator's forced leg, settling a lost one."""

    attempt: Attempt
    redrive: bool = False


Admission = DeadLetter | Refuse | Repeat | Skip | Execute


def id_key(envelope: CommandEnvelope, *, internal: bool) -> bytes:
    """The id memory's key of a command (an internal command's never equals a client's)."""
    if internal:
        return encode_internal_id_key(envelope.aggregate_id, envelope.command_id)
    return encode_id_key(envelope.aggregate_id, envelope.command_id)


def admit(
    context: StepContext,
    record: InRecord,
    envelope: CommandEnvelope,
    key: bytes,
    *,
    known: bool,
    remembered: bytes | None,
    lost: frozenset[bytes],
) -> Admission:
    """What becomes of `envelope` read as `record`, whose id key `key` the memory holds as
    `remembered` (None: not held). `known`: its aggregate has a slot here; `lost`: the id
    keys of the partition's legs set aside and not settled."""
    problem = misrouted(context, record.key, envelope, known=known)
    if problem is not None:
        return problem
    internal_type = envelope.type in context.codec.internal_types
    if record.leg and not internal_type:
        return DeadLetter(PoisonCode.NOT_INTERNAL, f"{envelope.type} is not an internal command")
    if not record.leg and (internal_type or envelope.origin is not None):
        message = f"{envelope.type} is internal to the service: a client cannot send it"
        return Refuse(FlowCode.FORGED_INTERNAL_COMMAND, message)
    origin = envelope.origin
    if origin is not None:
        attempt = Attempt(origin.first_attempt_ms, origin.fingerprint)
    else:
        first = envelope.first_attempt_ms
        if first is None:  # the attempt is when the service first read it
            first = context.now_ms if record.forwarded_ms is None else record.forwarded_ms
        attempt = Attempt(first, command_fingerprint(envelope))
    earlier = None if remembered is None else decode_entry(remembered)
    if record.leg:
        return _leg(envelope, key, attempt, remembered=remembered, earlier=earlier, lost=lost)
    verdict = judge(
        now_ms=context.now_ms,
        window_ms=context.window_ms,
        first_attempt_ms=attempt.first_attempt_ms,
        fingerprint=attempt.fingerprint,
        seen_first_attempt_ms=None if earlier is None else earlier.first_attempt_ms,
        seen_fingerprint=None if earlier is None else earlier.fingerprint,
    )
    if verdict is IdVerdict.REPEAT and remembered is not None and earlier is not None:
        return Repeat(remembered, earlier)
    if verdict is not IdVerdict.EXECUTE:
        return Refuse(*id_refusal(context, verdict, envelope, attempt.first_attempt_ms, earlier))
    return Execute(attempt)


def _leg(
    envelope: CommandEnvelope,
    key: bytes,
    attempt: Attempt,
    *,
    remembered: bytes | None,
    earlier: IdEntry | None,
    lost: frozenset[bytes],
) -> Admission:
    """A leg's id names one transfer forever, so a leg the memory holds is a copy sent again
    on a retry: answered from memory, never done twice; a copy the memory no longer holds
    was done long ago (the original precedes it on the same internal partition): skipped.
    An operator's forced leg is done only while `lost` names it (never done), so a
    settlement happens once, never beside the leg."""
    if envelope.redrive:
        return Execute(attempt, redrive=True) if key in lost else Skip(SkipCode.NOT_SET_ASIDE)
    if remembered is not None and earlier is not None:
        return Repeat(remembered, earlier)
    if envelope.resent:
        return Skip(SkipCode.FORGOTTEN_LEG)
    return Execute(attempt)


def misrouted(
    context: StepContext, key: bytes | None, envelope: CommandEnvelope, *, known: bool
) -> DeadLetter | None:
    """Why a decodable command does not belong here, if it does not. A known aggregate
    already passed the partition check (the state holds only aggregates of slots this
    partition owns), so the hash is only computed for new ones. With a slot record, a
    command for a slot owned elsewhere was forwarded before admission: one that reaches
    this check is one the effective table routes back here."""
    aggregate_id = envelope.aggregate_id
    if key is None or key != encode_key(aggregate_id):
        return DeadLetter(PoisonCode.KEY_MISMATCH, f"record key {key!r} is not {aggregate_id!r}")
    if not known and not context.owns(aggregate_id):
        return DeadLetter(
            PoisonCode.WRONG_PARTITION,
            f"{aggregate_id!r} belongs to partition {context.owner(aggregate_id)}, "
            f"not {context.partition}",
        )
    reply_to = envelope.reply_to
    if reply_to is not None and reply_to >= context.reply_lanes:
        return DeadLetter(
            PoisonCode.INVALID_REPLY_TO,
            f"reply_to {reply_to} is not one of the {context.reply_lanes} reply lanes",
        )
    return None


def id_refusal(
    context: StepContext,
    verdict: IdVerdict,
    envelope: CommandEnvelope,
    first: int,
    earlier: IdEntry | None,
) -> tuple[IdCode, str]:
    """The code and message of a refusal by the id memory."""
    command_id = envelope.command_id
    if verdict is IdVerdict.REUSED:
        return (
            IdCode.ID_REUSED,
            f"command id {command_id!r} was used for another command on "
            f"{envelope.aggregate_id!r}; use a new id for a new command",
        )
    if verdict is IdVerdict.IN_FUTURE:
        return (
            IdCode.FIRST_ATTEMPT_IN_FUTURE,
            f"first attempt time {first} is ahead of the partition's clock {context.now_ms}",
        )
    started = first if earlier is None else earlier.first_attempt_ms
    return (
        IdCode.EXPIRED,
        f"command id {command_id!r} was first tried {context.now_ms - started} ms ago, past "
        f"the {context.window_ms} ms idempotency window; it is not executed again",
    )
