"""The account aggregate as the generic event-sourcing flow sees it.

`LEDGER` satisfies `topology.protocol.Aggregate` structurally; the domain never imports
topology. Bump `event_schema_version` (and add upcasters) when an event's layout changes, and
`state_schema_version` when `Account`'s layout changes (old snapshots are then rebuilt from
events).
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from ledger.commands import Command
from ledger.decide import decide
from ledger.events import Event
from ledger.evolve import evolve
from ledger.rejections import Rejection
from ledger.state import Account, AccountView, view

__all__ = ["LEDGER", "AccountAggregate"]


class AccountAggregate:
    """Accounts: commands, events, state and view types, their versions and the pure rules."""

    name: Final = "account"
    command_type: Final = Command
    event_type: Final = Event
    state_type: Final = Account
    view_type: Final = AccountView
    state_schema_version: Final = 2  # 2: `Account.version` dropped (the slot counts)
    event_schema_version: Final = 1
    upcasters: Final[Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]] = (
        MappingProxyType({})
    )

    def decide(self, state: Account | None, command: Command) -> list[Event] | Rejection:
        """See `ledger.decide.decide`."""
        return decide(state, command)

    def evolve(self, state: Account | None, event: Event) -> Account:
        """See `ledger.evolve.evolve`."""
        return evolve(state, event)

    def view(self, state: Account, version: int) -> AccountView:
        """See `ledger.state.view`."""
        return view(state, version)


LEDGER: Final = AccountAggregate()
