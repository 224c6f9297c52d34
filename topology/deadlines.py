"""The per-partition index of deadlines (a saga aggregate's expiries), derived from state.

Invariant: for every aggregate whose state has deadlines, the index holds its earliest one;
it is rebuilt from the committed states on restore and updated from every committed batch's
changed slots, so it never says more than the state does (a stale entry is dropped when due).
"""

import heapq
from collections.abc import Iterable, Mapping

from topology.envelopes import Slot
from topology.protocol import Saga

__all__ = ["Deadlines"]


class Deadlines:
    """Aggregate id → earliest deadline, with a heap to find what is due cheaply."""

    def __init__(self, aggregate: object) -> None:
        self._saga = aggregate if isinstance(aggregate, Saga) else None
        self._earliest: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def rebuild(self, states: Mapping[str, Slot]) -> None:
        """Index every aggregate of `states` (a restore: decodes every slot once)."""
        self._earliest.clear()
        self._heap.clear()
        if self._saga is not None:
            self.update(states.items())

    def update(self, changed: Iterable[tuple[str, Slot]]) -> None:
        """Re-index the aggregates of a committed batch."""
        if self._saga is None:
            return
        for aggregate_id, slot in changed:
            times = () if slot.state is None else self._saga.deadlines(slot.state)
            if times:
                first = min(times)
                self._earliest[aggregate_id] = first
                heapq.heappush(self._heap, (first, aggregate_id))
            else:
                self._earliest.pop(aggregate_id, None)

    def due(self, now_ms: int) -> list[str]:
        """The aggregates with a deadline at or before `now_ms` (left in the index until a
        committed batch changes them)."""
        first = self.next_at()
        if first is None or first > now_ms:
            return []
        return sorted(a for a, at in self._earliest.items() if at <= now_ms)

    def next_at(self) -> int | None:
        """The earliest deadline indexed (None: none)."""
        while self._heap and self._earliest.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
