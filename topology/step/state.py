"""The batch's working state beside its output records: the slots it changed, the money its
events moved, and the partition's lost legs. The committed values it starts from are never
mutated: the caller installs the new ones only after the transaction commits."""

from collections.abc import Callable, Iterable, Mapping

from topology.codec.keys import encode_key
from topology.envelopes import Slot
from topology.flows import Flows, tallied
from topology.protocol import Tallied
from topology.step.context import StepContext
from topology.store import SnapshotStore

__all__ = ["LostLegs", "Slots", "Tally"]


class Slots:
    """The aggregates' latest slots: this batch's working copies over the committed ones.
    Invariant of `committed`: it only holds aggregates of this partition."""

    def __init__(self, committed: Mapping[str, Slot]) -> None:
        self.committed = committed
        self.changed: dict[str, Slot] = {}

    def get(self, aggregate_id: str) -> Slot | None:
        """The aggregate's latest slot: this batch's working copy, else the committed one."""
        slot = self.changed.get(aggregate_id)
        return self.committed.get(aggregate_id) if slot is None else slot

    def version(self, aggregate_id: str) -> int:
        """The aggregate's latest version (0: it has no events)."""
        slot = self.get(aggregate_id)
        return 0 if slot is None else slot.version

    def put(self, aggregate_id: str, slot: Slot) -> None:
        self.changed[aggregate_id] = slot

    def ids(self) -> set[str]:
        """Every aggregate held: the committed ones and this batch's."""
        return {*self.committed, *self.changed}

    def in_slots(self, slots: frozenset[int], slot_of: Callable[[bytes], int]) -> list[str]:
        """The aggregates held (committed or this batch's) whose key's slot is one of
        `slots`, sorted: from the committed store's slot index when it keeps one."""
        committed = self.committed
        if isinstance(committed, SnapshotStore):
            found = set(committed.in_slots(slots, slot_of))
        else:
            found = {a for a in committed if slot_of(encode_key(a)) in slots}
        found.update(a for a in self.changed if slot_of(encode_key(a)) in slots)
        return sorted(found)

    def drop(self, aggregate_ids: Iterable[str]) -> None:
        """Forget this batch's working copies of `aggregate_ids` (a handoff: they leave)."""
        for aggregate_id in aggregate_ids:
            self.changed.pop(aggregate_id, None)


class Tally:
    """The money moves of this batch's events, for an aggregate that says what its events
    move (`topology.protocol.Tallied`; others move none), on top of the partition's flows."""

    def __init__(self, aggregate: object, flows: Flows | None) -> None:
        self._tallied = aggregate if isinstance(aggregate, Tallied) else None
        self._flows = flows
        self._moves: list[tuple[str, str, int]] = []
        self._moved: list[tuple[int | None, int | None, int]] = []  # (out, into, amount)

    def add(self, event: object) -> None:
        if self._tallied is not None:
            self._moves.extend(self._tallied.moves(event))

    def balance_of(self, state: object) -> int:
        """The money `state` holds (0 for an aggregate that moves none)."""
        return 0 if self._tallied is None or state is None else self._tallied.balance_of(state)

    def moved(self, *, out: int | None = None, into: int | None = None, amount: int) -> None:
        """Accounts holding `amount` left for partition `out` or came from `into`."""
        if self._tallied is not None:
            self._moved.append((out, into, amount))

    def flows_after(self, context: StepContext) -> Flows | None:
        """The partition's flows after this batch (None: no event or move moved money)."""
        if not self._moves and not self._moved:
            return None
        flows = self._flows or Flows()
        if self._moves:
            flows = tallied(flows, self._moves, context.owner)
        for out, into, amount in self._moved:
            flows = flows.moved(out=out, into=into, amount=amount)
        return flows


class LostLegs:
    """The id keys of the partition's internal commands set aside and not settled yet."""

    def __init__(self, lost: frozenset[bytes]) -> None:
        self.lost = lost
        self._changed = False

    def add(self, key: bytes) -> None:
        """An original leg set aside: lost until an operator settles it."""
        self.lost, self._changed = self.lost | {key}, True

    def settle(self, key: bytes) -> None:
        """An operator's forced leg, done now: no longer lost."""
        self.lost, self._changed = self.lost - {key}, True

    def remove(self, keys: Iterable[bytes]) -> None:
        """Legs whose accounts leave in a handoff: their target holds them from now on."""
        gone = self.lost & frozenset(keys)
        if gone:
            self.lost, self._changed = self.lost - gone, True

    def after(self) -> frozenset[bytes] | None:
        """The lost legs after this batch (None: unchanged)."""
        return self.lost if self._changed else None
