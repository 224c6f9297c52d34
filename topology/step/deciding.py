"""Deciding: a command the id memory lets through is checked against its expected version,
decided by the aggregate (with its context, for a saga), and its events are folded into the
aggregate's working slot and written out."""

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

__all__ = ["Decider"]


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
            return _Refused(_FlowRejection(FlowCode.VERSION_CONFLICT, message))
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

    def apply(
        self, record: InRecord, envelope: CommandEnvelope, slot: Slot | None, events: Sequence[Any]
    ) -> int:
        """Fold `events` into the aggregate's slot (a new working copy) and write each out;
        the aggregate's version after them."""
        version = 0 if slot is None else slot.version
        if not events:
            return version
        state: Any = None if slot is None else slot.state
        aggregate, codec = self._aggregate, self._context.codec
        for event in events:
            version += 1
            state = aggregate.evolve(state, event)
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
        self._slots.put(envelope.aggregate_id, Slot(state, version))
        return version
