"""A second aggregate, for tests only: a counter that can be incremented and sealed. It shares
nothing with the ledger, so a service of counters proves that ``actors/`` and ``topology/``
run any aggregate (``topology.protocol.Aggregate``).

Importable by Ray workers (the driver's sys.path travels with the job), so the aggregate is
pickled by reference into the coordinator and the partition actors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, assert_never

import msgspec

__all__ = ["COUNTER", "Add", "Added", "Count", "CountView", "Seal", "Sealed"]


class Add(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    by: int


class Seal(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    pass


class Added(msgspec.Struct, frozen=True, tag=True):
    by: int


class Sealed(msgspec.Struct, frozen=True, tag=True):
    pass


class Count(msgspec.Struct, frozen=True, array_like=True):
    value: int
    sealed: bool


class CountView(msgspec.Struct, frozen=True):
    value: int
    sealed: bool


class Refused(msgspec.Struct, frozen=True):
    code: str
    message: str


class Decided(msgspec.Struct, frozen=True):
    """A counter's decision (a `topology.protocol.Decision`): its events, or a rejection; a
    counter sends nothing to other counters."""

    events: list[Added | Sealed] = msgspec.field(default_factory=list)
    rejection: Refused | None = None
    sends: tuple[()] = ()
    final: bool = True


class CounterAggregate:
    """Counters: ``Add`` (a positive step) until ``Seal``; a sealed counter refuses both."""

    name: Final = "counter"
    command_type: Final = Add | Seal
    event_type: Final = Added | Sealed
    state_type: Final = Count
    view_type: Final = CountView
    state_schema_version: Final = 1
    event_schema_version: Final = 1
    upcasters: Final[Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]] = (
        MappingProxyType({})
    )

    def decide(self, state: Count | None, command: Add | Seal) -> Decided:
        if state is not None and state.sealed:
            return Decided(rejection=Refused("sealed", "the counter is sealed"))
        match command:
            case Add(by=by):
                if by <= 0:
                    refused = Refused("not_positive", f"a step must be positive, got {by}")
                    return Decided(rejection=refused)
                return Decided([Added(by)])
            case Seal():
                return Decided([Sealed()])
            case _:
                assert_never(command)

    def evolve(self, state: Count | None, event: Added | Sealed) -> Count:
        current = state or Count(0, False)
        match event:
            case Added(by=by):
                return Count(current.value + by, current.sealed)
            case Sealed():
                return Count(current.value, True)
            case _:
                assert_never(event)

    def view(self, state: Count, version: int) -> CountView:
        return CountView(state.value, state.sealed)


COUNTER: Final = CounterAggregate()
