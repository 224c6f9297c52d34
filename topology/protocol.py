"""What the generic event-sourcing flow needs from a domain aggregate (structural typing).

An aggregate's commands and events are tagged msgspec Structs whose tag is their type name
on the wire. Its rules are pure: `decide` returns the events to append (possibly none) or a
rejection; `evolve` folds one event into the state (None: the aggregate does not exist yet).
"""

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["Aggregate", "RejectionLike", "Upcaster"]

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
