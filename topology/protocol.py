"""What the generic event-sourcing flow needs from a domain aggregate (structural typing).

An aggregate's commands and events are tagged msgspec Structs whose tag is their type name
on the wire. Its rules are pure: `decide` returns the events to append (possibly none) or a
rejection; `evolve` folds one event into the state (None: the aggregate does not exist yet).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Aggregate",
    "DecisionLike",
    "RejectionLike",
    "Saga",
    "SendLike",
    "Tallied",
    "Upcaster",
]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns an event payload at schema version v into the payload at version v + 1."""


class RejectionLike(Protocol):
    """A refused command, as the flow reports it."""

    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...


class Aggregate(Protocol):
    """A domain aggregate. Treated as immutable: codecs cache per-aggregate decoders."""

    @property
    def name(self) -> str: ...

    @property
    def command_type(self) -> Any:
        """The union of command Struct types."""

    @property
    def event_type(self) -> Any:
        """The union of event Struct types."""

    @property
    def state_type(self) -> Any:
        """The state Struct type (snapshotted)."""

    @property
    def view_type(self) -> Any:
        """The public view Struct type (published to the state topic)."""

    @property
    def state_schema_version(self) -> int:
        """Layout version of `state_type`; snapshots of another version are stale."""

    @property
    def event_schema_version(self) -> int:
        """Layout version events are written with; older ones are upcast on read."""

    @property
    def upcasters(self) -> Mapping[tuple[str, int], Upcaster]:
        """(event type name, schema version v) → payload at v to payload at v + 1."""

    def decide(self, state: Any, command: Any) -> list[Any] | RejectionLike:
        """A list of events (accepted) or a `RejectionLike` (refused). An expected version
        (optimistic concurrency) is the flow's to check, against the slot's version, before
        this is called."""

    def evolve(self, state: Any, event: Any) -> Any:
        """The state after `event`."""

    def view(self, state: Any, version: int) -> Any:
        """The public view of an existing (non-None) state at `version` (the number of its
        events applied: the flow's count, kept in its slot, not in the state)."""


class SendLike(Protocol):
    """An internal command for aggregate `target` under the deterministic id `command_id`."""

    @property
    def target(self) -> str: ...

    @property
    def command(self) -> Any: ...

    @property
    def command_id(self) -> str: ...


class DecisionLike(Protocol):
    """A decision of a saga's step: events to append and internal commands to send. `final`
    False defers the client's reply to the saga's last leg; `refusal` (a leg refusing the
    saga while it sends what undoes it) is the saga's final answer."""

    @property
    def events(self) -> Sequence[Any]: ...

    @property
    def sends(self) -> Sequence[SendLike]: ...

    @property
    def final(self) -> bool: ...

    @property
    def refusal(self) -> RejectionLike | None: ...


@runtime_checkable
class Saga(Protocol):
    """What an aggregate adds (beside `Aggregate`) when its commands span aggregates: the
    flow then decides with `decide_in`, routes the commands a decision sends (same partition:
    in the same batch; else through the internal topic, in the same transaction), refuses
    internal command types on the public commands topic, and asks `due` at the start of each
    batch for the commands that deadlines (`deadlines`, on the partition's clock) make due."""

    @property
    def internal_command_type(self) -> Any:
        """The union of internal command Struct types (only the service sends them)."""

    @property
    def internal_schema_version(self) -> int:
        """Layout version internal commands are written with (each envelope carries it); a
        worker stops before a newer one rather than dead-letter money in flight."""

    def decide_in(
        self,
        state: Any,
        command: Any,
        *,
        command_id: str,
        aggregate_id: str,
        now_ms: int,
        version: int,
    ) -> list[Any] | RejectionLike | DecisionLike:
        """`decide` with the command's id, its aggregate id, the partition's clock and the
        aggregate's version before the command."""

    def deadlines(self, state: Any) -> Sequence[int]:
        """The times (partition clock, epoch ms) at which `state` has something due."""

    def due(self, aggregate_id: str, state: Any, now_ms: int) -> Sequence[SendLike]:
        """The internal commands (to itself) that are due at `now_ms`."""


@runtime_checkable
class Tallied(Protocol):
    """An aggregate whose events move money: the flow keeps each partition's flows
    (`topology.flows`) and publishes them beside the views."""

    def moves(self, event: Any) -> Sequence[tuple[str, str, int]]:
        """(kind, counterparty aggregate id or "", amount) of each move `event` makes; kind
        is one of `topology.flows.MOVE_KINDS`."""
