"""Deciding: a command the id memory lets through is checked against its expected version,
decided by the aggregate (with its context, for a saga), and its events are folded into the
aggregate's working slot and written out."""

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import msgspec

from topology.codec import CommandEnvelope, Slot
from topology.codes import VERSION_CONFLICT
from topology.protocol import DecisionLike, RejectionLike, Saga, SendLike
from topology.step.context import StepContext
from topology.step.output import Output
from topology.step.records import InRecord
from topology.step.state import Slots, Tally

__all__ = ["Decided", "Decider"]


class Decided(NamedTuple):
    """A decision, whatever shape the aggregate gave it: the events to append, the internal
    commands to send, whether the reply is sent now (`final`), and the refusal, if any."""

    events: Sequence[Any]
    sends: Sequence[SendLike]
    final: bool
    refusal: RejectionLike | None


class _Refused(msgspec.Struct, frozen=True):
    """A refusal by the flow itself (not the domain's)."""

    code: str
    message: str


class Decider:
    """Decides commands against the batch's working slots and appends their events."""

    def __init__(
        self,
        context: StepContext,
        saga: Saga | None,
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

    def decide(self, envelope: CommandEnvelope, command: Any, slot: Slot | None) -> Decided:
        """The decision on `command` for the aggregate at `slot` (None: it has no events)."""
        version = 0 if slot is None else slot.version
        state: Any = None if slot is None else slot.state
        expected = envelope.expected_version
        if expected is not None and expected != version:
            message = f"expected version {expected}, account is at version {version}"
            return Decided((), (), True, _Refused(VERSION_CONFLICT, message))
        if self._saga is not None:
            return _parts(
                self._saga.decide_in(
                    state,
                    command,
                    command_id=envelope.command_id,
                    aggregate_id=envelope.aggregate_id,
                    now_ms=self._context.now_ms,
                    version=version,
                )
            )
        return _parts(self._aggregate.decide(state, command))

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
            value = codec.encode_event(
                envelope.aggregate_id,
                version,
                event,
                command_id=envelope.command_id,
                timestamp_ms=self._context.now_ms,
            )
            self._output.event(record, value)
        self._slots.put(envelope.aggregate_id, Slot(state, version))
        return version


def _parts(decision: list[Any] | RejectionLike | DecisionLike) -> Decided:
    """A decision's parts: it is events, a rejection or a saga's step."""
    if isinstance(decision, list):
        return Decided(decision, (), True, None)
    if hasattr(decision, "events"):
        step = cast(DecisionLike, decision)
        return Decided(step.events, step.sends, step.final, step.refusal)
    return Decided((), (), True, decision)
