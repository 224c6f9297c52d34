"""How each command is answered: a refusal by the flow, a dead letter's refusal, a retry
answered from memory, and the conclusion of a decided command (its reply now, or its answer
deferred, while its saga runs, to the saga's last leg).

Invariant: a decided command's entry (`Answered` or `Deferred`) is remembered under its id
key (and written to the memory's changelog) in the transaction that decides it; refusals by
the flow and dead letters are not remembered (they change nothing: the same command is
refused again).
"""

from typing import Any

import msgspec

from topology.codec.commands import readdressed
from topology.codec.keys import encode_id_key
from topology.codec.replies import encode_entry, encode_reply
from topology.codes import FlowRefusal, PoisonCode, SkipCode
from topology.envelopes import Answered, CommandEnvelope, Deferred, IdEntry, Origin, Reply
from topology.limits import clip
from topology.protocol import Decision, Rejection
from topology.step.admission import Attempt
from topology.step.context import StepContext
from topology.step.dead_letters import dead_letter
from topology.step.output import Output
from topology.step.records import UNREMEMBERED_KEY_PREFIX, InRecord, OutcomeKind
from topology.step.saga import SagaRouter

__all__ = ["Answers"]


class Answers:
    """Answers the commands of one batch through its output and its saga router."""

    def __init__(self, context: StepContext, output: Output, router: SagaRouter) -> None:
        self._context = context
        self._output = output
        self._router = router

    def refuse(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        refusal: tuple[FlowRefusal, str],
        *,
        version: int,
    ) -> None:
        """A refusal (code, message) by the flow itself: not remembered."""
        self._unremembered(record, envelope, key, refusal, version=version)
        self._output.outcome(record, envelope, OutcomeKind.REJECTED, refusal[0])

    def dead_letter(
        self,
        record: InRecord,
        code: PoisonCode,
        message: str,
        envelope: CommandEnvelope | None,
        *,
        version: int,
    ) -> None:
        """Send the record to the dlq and, when its envelope was readable, a rejection to
        its sender (not remembered: the same bytes are dead-lettered the same way again);
        `message` is clipped to the message limit in both."""
        context = self._context
        message = clip(message)
        self._output.dlq.append(
            dead_letter(
                record,
                topic=context.source_topic,
                partition=context.partition,
                code=code,
                message=message,
            )
        )
        if envelope is not None:
            key = encode_id_key(envelope.aggregate_id, envelope.command_id)
            self._unremembered(record, envelope, key, (code, message), version=version)
        self._output.outcome(record, envelope, OutcomeKind.DLQ, code)

    def repeat(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        remembered: bytes,
        earlier: IdEntry,
    ) -> None:
        """Answer a retry from memory: its entry (`remembered`, encoded) again. An id in
        flight has no answer yet: its saga's internal commands are sent again instead, to
        answer on the retry's reply lane (their targets remember them: what they did is
        repeated, never done twice)."""
        if isinstance(earlier, Answered):
            self._output.outcome(record, envelope, OutcomeKind.DUPLICATE, earlier.reply.code)
            lane = envelope.reply_to if envelope.origin is None else envelope.origin.reply_to
            self._output.reply(record, lane, key, remembered)
            return
        self._output.outcome(record, envelope, OutcomeKind.DUPLICATE, SkipCode.IN_FLIGHT)
        for target, value in earlier.resend:
            self._router.dispatch(record, target, readdressed(value, envelope.reply_to))

    def conclude(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        decided: Decision[Any, Any],
        *,
        version: int,
        attempt: Attempt,
    ) -> None:
        """Answer a decided command (at `version` after it) and route what it sends: a final
        decision remembers (and sends) its reply; one that defers it remembers its id as in
        flight instead."""
        lane = envelope.reply_to if envelope.origin is None else envelope.origin.reply_to
        if decided.final:
            self._answer(record, envelope, key, lane, decided, version=version, attempt=attempt)
        else:
            self._defer(record, envelope, key, lane, decided, version=version, attempt=attempt)
        rejection = decided.rejection
        kind = OutcomeKind.ACCEPTED if rejection is None else OutcomeKind.REJECTED
        self._output.outcome(record, envelope, kind, None if rejection is None else rejection.code)

    def _answer(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        lane: int | None,
        decided: Decision[Any, Any],
        *,
        version: int,
        attempt: Attempt,
    ) -> None:
        """The reply is final: remembered here (and, for a leg that ends a saga, under the
        saga's client command too), sent to the sender, and what it sends is routed. A leg
        answers its saga's client; a leg with no saga has no client (empty command id)."""
        origin = envelope.origin
        if origin is None:
            command_id = "" if record.leg else envelope.command_id
            reply = self._decided(command_id, envelope.aggregate_id, decided.rejection, version)
            value = encode_entry(Answered(reply, *attempt))
        elif origin.final is not None:
            value = origin.final  # decided by an earlier leg (a refusal)
        else:
            reply = self._decided(
                origin.command_id, origin.aggregate_id, decided.rejection, origin.version
            )
            value = encode_entry(Answered(reply, *attempt))
        self._output.remember(record, lane, key, value)
        if origin is not None:
            self._router.end_saga(record, origin, value)
        self._router.route(record, decided.sends, None, envelope.principal)

    def _defer(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        lane: int | None,
        decided: Decision[Any, Any],
        *,
        version: int,
        attempt: Attempt,
    ) -> None:
        """The saga goes on: its client's reply waits for its last leg. What it sends
        carries the saga's origin (made here by its first step; a leg that refuses the saga
        writes its final answer into it), and the id is remembered as `Deferred`, with what
        the first step sent to send again on a retry."""
        origin = envelope.origin
        if origin is None:
            origin = Origin(
                envelope.command_id,
                envelope.aggregate_id,
                envelope.reply_to,
                attempt.first_attempt_ms,
                attempt.fingerprint,
                version,
            )
        elif decided.rejection is not None:
            final = self._decided(
                origin.command_id, origin.aggregate_id, decided.rejection, origin.version
            )
            origin = msgspec.structs.replace(origin, final=encode_entry(Answered(final, *attempt)))
        resend = self._router.route(record, decided.sends, origin, envelope.principal)
        entry = Deferred(*attempt, resend if envelope.origin is None else [])
        self._output.remember(record, lane, key, encode_entry(entry))

    def _unremembered(
        self,
        record: InRecord,
        envelope: CommandEnvelope,
        key: bytes,
        refusal: tuple[FlowRefusal, str],
        *,
        version: int,
    ) -> None:
        """Send a refusal (code, message) keyed apart from the remembered replies
        (compaction never lets it replace one)."""
        code, message = refusal
        reply = Reply.refuse(
            command_id=envelope.command_id,
            aggregate_id=envelope.aggregate_id,
            code=code,
            message=message,
            version=version,
            position=self._context.position,
        )
        self._output.reply(
            record, envelope.reply_to, UNREMEMBERED_KEY_PREFIX + key, encode_reply(reply)
        )

    def _decided(
        self, command_id: str, aggregate_id: str, rejection: Rejection | None, version: int
    ) -> Reply:
        """The reply of a decision: accepted, or refused with `rejection`; at this batch's
        position (the partition whose commit makes it: a transfer's target for its final
        leg, while `version` is the source's)."""
        position = self._context.position
        if rejection is None:
            return Reply.accept(
                command_id=command_id, aggregate_id=aggregate_id, version=version, position=position
            )
        return Reply.refuse(
            command_id=command_id,
            aggregate_id=aggregate_id,
            code=rejection.code,
            message=rejection.message,
            version=version,
            position=position,
        )
