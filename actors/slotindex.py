"""A partition member's slot indexes, built between batches (`docs/design-repartition.md`).

A handoff finds its accounts in the state's slot index (`SnapshotStore.in_slots`) and their
remembered ids in the id memory's (`IdStore.entries_in`). Built inside the handoff's
transaction, the two cost one hash per aggregate held (over a second at 250,000 accounts),
a pause every command of the partition waits for. So a member builds them ahead, once the
application has slots: its loop (the writer's, a standby's tail) calls `index_slots` after
each poll, and a call works for at most `STEP_SECONDS` (in chunks of `CHUNK` aggregates), so
no batch waits longer than that for it; once both are complete a call costs a few attribute
reads. A handoff that comes before the build ends finishes it itself (correct, only slower).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from actors.committed import Committed
from actors.idstore import IdStore
from actors.routes import Routes
from topology.routing import RoutingTable

__all__ = ["CHUNK", "STEP_SECONDS", "Indexed", "build", "index_slots"]

STEP_SECONDS: Final = 0.02
"""The most a member's loop spends on its slot indexes between two polls. A wall-clock
budget: on two loaded cores (a repartition's growth starts four actors) 10 ms gave a
source too little CPU to index 250,000 accounts in the ~20 s before its first handoff."""

CHUNK: Final = 200
"""Aggregates indexed between two looks at the clock (under a millisecond)."""


class Indexed(Protocol):
    """A store that keeps a slot index, built in steps (`SnapshotStore`, `IdStore`)."""

    def index_step(self, slot_of: Callable[[bytes], int], limit: int | None = None) -> bool: ...


def index_slots(
    committed: Committed,
    ids: IdStore | None,
    routes: Routes | None,
    seconds: float = STEP_SECONDS,
) -> bool:
    """A step of a partition member's indexes: its state (`committed.states`), then its id
    memory `ids` (None: not open), by the table the member holds (`routes`), else its slot
    record's, else the published one it restored (every table of an application has the
    same slots, hence the same slot function); whether both are complete."""
    table = None if routes is None else routes.table
    if table is None and committed.slot_record is not None:
        table = committed.slot_record.table
    return build((committed.states, ids), table or committed.routing, seconds)


def build(
    stores: Iterable[Indexed | None],
    table: RoutingTable | None,
    seconds: float = STEP_SECONDS,
) -> bool:
    """Build the slot indexes of `stores` (None: a store not open), in order, by `table`'s
    slot function until each is complete or `seconds` have passed; whether all are
    complete. Without a table (the application has no slots) nothing is indexed."""
    if table is None:
        return False
    slot_of = table.slot_of
    deadline = time.monotonic() + seconds
    for store in stores:
        while store is not None and not store.index_step(slot_of, CHUNK):
            if time.monotonic() >= deadline:
                return False
    return True
