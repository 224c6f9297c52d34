"""The ``repartition`` fault's pure parts: which count the next growth goes to, and a
repartition's progress as the run reports it (phase, moves published, the legs' pauses).

The fault grows the application from its first count N₀ to 2·N₀, then to 3·N₀ (4 → 8 → 12
with the default N₀ = 4): the first growth keeps the modular layout, the second does not
(``docs/design-repartition.md``, "The plan"). Nothing here does I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from topology.control import MoveState, RepartitionRecord

__all__ = ["GROWTH_FACTORS", "MoveSummary", "next_count", "summarize"]

GROWTH_FACTORS = (2, 3)
"""The counts the fault grows to, as multiples of the application's first count."""


def next_count(first: int, current: int) -> int | None:
    """The count the next growth goes to from ``current`` (the first count being ``first``),
    or None when every growth of ``GROWTH_FACTORS`` is done."""
    for factor in GROWTH_FACTORS:
        if first * factor > current:
            return first * factor
    return None


@dataclass(frozen=True)
class MoveSummary:
    """One repartition as the run reports it. Pauses in ms over the legs that reported one
    (``None``: none did); ``seconds`` from the request to the end (None: not ended)."""

    number: int
    from_partitions: int
    to_partitions: int
    phase: str
    moves: int
    published: int
    handed_off: int
    handoff_max: float | None
    handoff_p50: float | None
    install_max: float | None
    install_p50: float | None
    seconds: float | None
    error: str | None = None

    def __str__(self) -> str:
        text = (
            f"repartition {self.number}: {self.from_partitions} → {self.to_partitions} "
            f"{self.phase}, {self.published}/{self.moves} moves published "
            f"({self.handed_off} handed off)"
        )
        if self.handoff_max is not None:
            text += f", handoff pause p50 {self.handoff_p50:.0f} ms max {self.handoff_max:.0f} ms"
        if self.install_max is not None:
            text += f", install pause p50 {self.install_p50:.0f} ms max {self.install_max:.0f} ms"
        if self.seconds is not None:
            text += f", {self.seconds:.1f} s"
        if self.error:
            text += f": {self.error}"
        return text


def _stats(pauses: Sequence[float | None]) -> tuple[float | None, float | None]:
    known = [p for p in pauses if p is not None]
    if not known:
        return None, None
    return max(known), statistics.median(known)


def summarize(record: RepartitionRecord) -> MoveSummary:
    """``record``'s progress: moves published and handed off, each leg's pause (max, p50)."""
    handoff_max, handoff_p50 = _stats([m.handoff_pause_ms for m in record.moves])
    install_max, install_p50 = _stats([m.install_pause_ms for m in record.moves])
    ended = record.finished_at and not record.phase.active
    return MoveSummary(
        number=record.number,
        from_partitions=record.from_partitions,
        to_partitions=record.to_partitions,
        phase=record.phase.value,
        moves=len(record.moves),
        published=record.done(),
        handed_off=sum(m.state.reached(MoveState.HANDED_OFF) for m in record.moves),
        handoff_max=handoff_max,
        handoff_p50=handoff_p50,
        install_max=install_max,
        install_p50=install_p50,
        seconds=record.finished_at - record.requested_at if ended else None,
        error=record.error,
    )
