"""A test-only schema version bump of the ledger: the ledger's state layout plus
``movements`` (the number of deposits and withdrawals), which only a rebuild from the events
can fill in, under the next state schema version (whatever the ledger's is, so a bump of the
ledger itself never makes the two versions equal).

Importable by Ray workers (the driver's sys.path travels with the job), so the aggregate is
pickled by reference into the shadow and the partition actor.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ledger.aggregate import LEDGER, AccountAggregate
from ledger.events import AccountOpened, Deposited, Withdrawn
from ledger.state import Account, AccountView

__all__ = ["LEDGER_V2", "AccountV2"]


class AccountV2(Account, frozen=True):
    """Account state: the ledger's layout and `movements`."""

    movements: int = 0


class AccountAggregateV2(AccountAggregate):
    """The ledger with the next state layout; same commands, events, rules and view."""

    state_type: Final = AccountV2  # type: ignore[misc]
    state_schema_version: Final = AccountAggregate.state_schema_version + 1  # type: ignore[misc]

    def evolve(self, state: Any, event: Any) -> Any:
        if isinstance(event, AccountOpened):
            return AccountV2("open", event.currency, 0, event.overdraft_limit)
        after = LEDGER.evolve(state, event)  # replace() keeps the AccountV2 type
        if isinstance(event, Deposited | Withdrawn):
            after = msgspec.structs.replace(after, movements=after.movements + 1)  # type: ignore[attr-defined]
        return after

    def view(self, state: Any, version: int) -> AccountView:
        return AccountView(
            state.status,
            state.currency,
            state.balance,
            state.overdraft_limit,
            version,
            available=state.balance + state.overdraft_limit,
        )


LEDGER_V2: Final = AccountAggregateV2()
