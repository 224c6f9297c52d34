"""What the generic event-sourcing flow needs from a domain aggregate: protocols generic over
the aggregate's command, event, state and view types.

The typing is structural: the domain imports nothing from here (it sits below the flow), and
its types flow in through the type parameters where the service is assembled
(`Aggregate[Command, Event, Account, AccountView]`); the flow itself runs any aggregate
(`AnyAggregate`). Commands and events are tagged msgspec Structs whose tag is their type name
on the wire. The rules are pure: `decide` returns one `Decision` (the events to append,
possibly none, and for a saga the internal commands to send; or a rejection); `evolve` folds
one event into the state (None: the aggregate does not exist yet).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

__all__ = [
    "Aggregate",
    "AnyAggregate",
    "Decision",
    "Rejection",
    "Saga",
    "Send",
    "Tallied",
    "Upcaster",
]

CommandT_contra = TypeVar("CommandT_contra", contravariant=True)
EventT = TypeVar("EventT")
EventT_co = TypeVar("EventT_co", covariant=True)
EventT_contra = TypeVar("EventT_contra", contravariant=True)
StateT = TypeVar("StateT")
StateT_contra = TypeVar("StateT_contra", contravariant=True)
ViewT_co = TypeVar("ViewT_co", covariant=True)
SentT_co = TypeVar("SentT_co", covariant=True)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns an event payload at schema version v into the payload at version v + 1."""


class Rejection(Protocol):
    """Why a command is refused: a stable, machine-readable `code` and a `message` for
    humans."""

    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...


class Send(Protocol[SentT_co]):
    """An internal command for aggregate `target` under the deterministic id `command_id`."""

    @property
    def target(self) -> str: ...

    @property
    def command(self) -> SentT_co: ...

    @property
    def command_id(self) -> str: ...


class Decision(Protocol[EventT_co, SentT_co]):
    """What a command comes to: `events` to append (possibly none) and, for a saga, internal
    commands to send (`sends`). `rejection` None: accepted; else the command is refused
    (with no events, or a saga's leg that refuses the saga while it sends what undoes it).
    `final` False defers the client's reply to the saga's last leg; a rejection then is the
    saga's final answer."""

    @property
    def events(self) -> Sequence[EventT_co]: ...

    @property
    def sends(self) -> Sequence[Send[SentT_co]]: ...

    @property
    def final(self) -> bool: ...

    @property
    def rejection(self) -> Rejection | None: ...


class Aggregate(Protocol[CommandT_contra, EventT, StateT, ViewT_co]):
    """A domain aggregate over commands `CommandT`, events `EventT`, state `StateT` and
    public view `ViewT`. Treated as immutable: codecs cache per-aggregate decoders."""

    @property
    def name(self) -> str: ...

    @property
    def command_type(self) -> object:
        """The union of command Struct types (a type expression)."""

    @property
    def event_type(self) -> object:
        """The union of event Struct types (a type expression)."""

    @property
    def state_type(self) -> object:
        """The state Struct type (snapshotted)."""

    @property
    def view_type(self) -> object:
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

    def decide(self, state: StateT | None, command: CommandT_contra) -> Decision[EventT, object]:
        """The decision on `command` given `state`. An expected version (optimistic
        concurrency) is the flow's to check, against the slot's version, before this is
        called."""

    def evolve(self, state: StateT | None, event: EventT) -> StateT:
        """The state after `event`."""

    def view(self, state: StateT, version: int) -> ViewT_co:
        """The public view of an existing (non-None) state at `version` (the number of its
        events applied: the flow's count, kept in its slot, not in the state)."""


AnyAggregate: TypeAlias = Aggregate[Any, Any, Any, Any]
"""An aggregate of any types: what the flow, the codec and the actors run."""


@runtime_checkable
class Saga(Protocol[CommandT_contra, EventT_co, StateT_contra, SentT_co]):
    """What an aggregate adds (beside `Aggregate`) when its commands span aggregates: the
    flow then decides with `decide_in` (commands `CommandT`: its clients' and its internal
    ones), routes the internal commands (`SentT`) a decision sends (same partition: in the
    same batch; else through the internal topic, in the same transaction), refuses internal
    command types on the public commands topic, and asks `due` at the start of each batch for
    the commands that deadlines (`deadlines`, on the partition's clock) make due."""

    @property
    def internal_command_type(self) -> object:
        """The union of internal command Struct types (only the service sends them)."""

    @property
    def internal_schema_version(self) -> int:
        """Layout version internal commands are written with (each envelope carries it); a
        worker stops before a newer one rather than dead-letter money in flight."""

    def decide_in(
        self,
        state: StateT_contra | None,
        command: CommandT_contra,
        *,
        command_id: str,
        aggregate_id: str,
        now_ms: int,
        version: int,
    ) -> Decision[EventT_co, SentT_co]:
        """`decide` with the command's id, its aggregate id, the partition's clock and the
        aggregate's version before the command."""

    def deadlines(self, state: StateT_contra) -> Sequence[int]:
        """The times (partition clock, epoch ms) at which `state` has something due."""

    def due(self, aggregate_id: str, state: StateT_contra, now_ms: int) -> Sequence[Send[SentT_co]]:
        """The internal commands (to itself) that are due at `now_ms`."""


@runtime_checkable
class Tallied(Protocol[EventT_contra]):
    """An aggregate whose events move money: the flow keeps each partition's flows
    (`topology.flows`) and publishes them beside the views."""

    def moves(self, event: EventT_contra) -> Sequence[tuple[str, str, int]]:
        """(kind, counterparty aggregate id or "", amount) of each move `event` makes; kind
        is one of `topology.flows.MOVE_KINDS`."""

    def balance_of(self, state: Any) -> int:
        """The money `state` holds: what the flows identity adds up over a partition's
        accounts (a repartition's move tallies it as moved out and in)."""
