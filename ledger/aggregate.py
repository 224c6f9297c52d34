"""The account aggregate as the generic event-sourcing flow sees it.

`LEDGER` satisfies `topology.protocol.Aggregate[Command, Event, Account, AccountView]` (and
its transfer extension, `topology.protocol.Saga[Command | InternalCommand, Event, Account,
InternalCommand]`, and `Tallied[Event]`) structurally; the domain never imports topology. Bump
`event_schema_version` (and add upcasters) when an event's layout changes, and
`state_schema_version` when `Account`'s layout changes (old snapshots are then rebuilt from
events).
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from ledger.commands import Command, PostPending, Transfer, VoidPending
from ledger.decide import decide, due
from ledger.decision import Context, Decision, Send
from ledger.events import Event
from ledger.evolve import evolve
from ledger.internal import InternalCommand
from ledger.money import MoveKind, moves
from ledger.state import MAX_OPEN_TRANSFERS, Account, AccountView, view

__all__ = ["LEDGER", "AccountAggregate"]


class AccountAggregate:
    """Accounts: commands, events, state and view types, their versions and the pure rules.
    `max_open_transfers` caps the transfers an account holds open on each side (the service
    runs with `MAX_OPEN_TRANSFERS`; the simulator with small caps, to reach them)."""

    name: Final = "account"
    command_type: Final = Command
    internal_command_type: Final = InternalCommand
    event_type: Final = Event
    state_type: Final = Account
    view_type: Final = AccountView
    # 4: credits per source, transfers in flight; 3: pending transfers; 2: `Account.version`
    # dropped
    state_schema_version: Final = 5  # 5: `Account.awaited` (a pending transfer's pairing)
    event_schema_version: Final = 1
    internal_schema_version: Final = 3  # 3: `VoidRefusedPending.end`; 2: legs name their transfer
    upcasters: Final[Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]] = (
        MappingProxyType({})
    )

    def __init__(self, max_open_transfers: int = MAX_OPEN_TRANSFERS) -> None:
        if max_open_transfers < 1:
            raise ValueError(f"max_open_transfers must be at least 1, got {max_open_transfers}")
        self.max_open_transfers = max_open_transfers

    def decide(self, state: Account | None, command: Command) -> Decision:
        """Commands that need no context (see `decide_in` for the rest)."""
        if isinstance(command, Transfer | PostPending | VoidPending):
            raise TypeError(f"{type(command).__name__} needs decide_in (its id and the clock)")
        return decide(state, command)

    def decide_in(
        self,
        state: Account | None,
        command: Command | InternalCommand,
        *,
        command_id: str,
        aggregate_id: str,
        now_ms: int,
        version: int,
    ) -> Decision:
        """See `ledger.decide.decide`."""
        context = Context(command_id, aggregate_id, now_ms, version, self.max_open_transfers)
        return decide(state, command, context)

    def deadlines(self, state: Account) -> list[int]:
        """When `state`'s pending transfers expire (partition clock, epoch ms)."""
        return [p.expires_ms for p in state.pending.values() if p.expires_ms is not None]

    def due(self, aggregate_id: str, state: Account, now_ms: int) -> list[Send]:
        """See `ledger.decide.due`."""
        return due(aggregate_id, state, now_ms)

    def moves(self, event: Event) -> list[tuple[MoveKind, str, int]]:
        """See `ledger.money.moves`."""
        return moves(event)

    def balance_of(self, state: Account) -> int:
        """The balance the flows identity adds up (`ledger.money`)."""
        return state.balance

    def evolve(self, state: Account | None, event: Event) -> Account:
        """See `ledger.evolve.evolve`."""
        return evolve(state, event)

    def view(self, state: Account, version: int) -> AccountView:
        """See `ledger.state.view`."""
        return view(state, version)


LEDGER: Final = AccountAggregate()
