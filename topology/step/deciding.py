"""Deciding: a command the id memory lets through is checked against its expected version,
decided by the aggregate (with its context, for a saga), and its events are folded into the
aggregate's slot (`fold`) and, once the size guard lets that slot be, written out and made
its working slot (`write`)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from topology.codes import FlowCode
from topology.envelopes import CommandEnvelope, Slot
from topology.protocol import Decision, Saga, Send
from topology.step.context import StepContext
from topology.step.output import Output
from topology.step.records import InRecord
from topology.step.state import Slots, Tally

__all__ = ["Decider", "refused"]


@dataclass(frozen=True, slots=True)
class _FlowRejection:
    """A refusal by the flow itself (not the domain's)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class _Refused:
    """The flow's decision to refuse a command before its aggregate decides it."""

    rejection: _FlowRejection
    events: Sequence[Any] = ()
    sends: Sequence[Send[Any]] = ()
    final: bool = True


def refused(code: FlowCode, message: str) -> Decision[Any, Any]:
    """The flow's own refusal of a command, as a decision: no events, nothing sent."""
    return _Refused(_FlowRejection(code, message))


class Decider:
    """Decides commands against the batch's working slots and appends their events."""

    def __init__(
        self,
        context: StepContext,
        saga: Saga[Any, Any, Any, Any] | None,
        slots: Slots,
        output: Output,
        tally: Tally,
    ) -> None:
        self._context = context
        self._aggregate = context.codec.aggregate
        self._saga = saga  # the aggregate, when its commands span aggregates
        self._slots = slots
        self._output = output
        self._tally = tally

    def decide(
        self, envelope: CommandEnvelope, command: Any, slot: Slot | None
    ) -> Decision[Any, Any]:
        """The decision on `command` for the aggregate at `slot` (None: it has no events)."""
        version = 0 if slot is None else slot.version
        state: Any = None if slot is None else slot.state
        expected = envelope.expected_version
        if expected is not None and expected != version:
            message = f"expected version {expected}, account is at version {version}"
            return refused(FlowCode.VERSION_CONFLICT, message)
        if self._saga is not None:
            return self._saga.decide_in(
                state,
                command,
                command_id=envelope.command_id,
                aggregate_id=envelope.aggregate_id,
                now_ms=self._context.now_ms,
                version=version,
            )
        return self._aggregate.decide(state, command)

    def fold(self, slot: Slot | None, events: Sequence[Any]) -> Slot | None:
        """`slot` (None: the aggregate has no events yet) after `events`; None when there
        are none (the slot stays as it is)."""
        if not events:
            return None
        state: Any = None if slot is None else slot.state
        for event in events:
            state = self._aggregate.evolve(state, event)
        return Slot(state, (0 if slot is None else slot.version) + len(events))

    def write(
        self, record: InRecord, envelope: CommandEnvelope, events: Sequence[Any], after: Slot
    ) -> None:
        """Write `events` out, each with its sequence, tally the money they move, and make
        `after` (their fold) the aggregate's working slot."""
        codec = self._context.codec
        version = after.version - len(events)
        for event in events:
            version += 1
            self._tally.add(event)
            value = codec.events.encode(
                envelope.aggregate_id,
                version,
                event,
                command_id=envelope.command_id,
                timestamp_ms=self._context.now_ms,
                principal=envelope.principal,
            )
            self._output.event(record, value)
        self._slots.put(envelope.aggregate_id, after)
