"""The answer gap of a fault: how long the partitions it hit gave clients no reply.

For a fault injected at ``at`` that hit partitions ``P``, each partition ``p`` of ``P`` is
judged on the replies clients received to commands sent to ``p`` (an op's account decides
its partition; every reply the op received counts, at its ``Answer.at``):

- ``before``: the last such reply received at or before ``at``;
- ``after``: the first such reply received after ``at``;
- the gap of ``p`` is ``after − before``.

It is measured only when a client was waiting on ``p`` at ``at``: some command to ``p`` was
sent at or before ``at``, had no reply by then and was still being tried (its end, or its
budget's end, lies after ``at``). Otherwise ``p`` was idle, and a silence
would say nothing of the fault. A partition with a client waiting but no reply after ``at``
in the whole history is ``NO_REPLY_AFTER``; one that never replied before is
``NO_REPLY_BEFORE``. The fault's gap is that of its worst partition: ``NO_REPLY_AFTER`` if
any partition has it, else the largest measured gap, else the first other outcome.
Pure: the history and the partition of each account come in as arguments.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from eventledger.torture.history import Op

__all__ = ["Gap", "GapOutcome", "answer_gap", "gap_summary"]


class GapOutcome(StrEnum):
    MEASURED = "measured"
    IDLE = "idle"  # no command to the partitions was waiting at the injection
    NO_REPLY_BEFORE = "no reply before"
    NO_REPLY_AFTER = "no reply after"
    NO_PARTITION = "no partition"  # the fault hit none (a coordinator kill, a hostile burst)


@dataclass(frozen=True, slots=True)
class Gap:
    """A fault's answer gap: ``seconds`` is set exactly when the outcome is MEASURED."""

    outcome: GapOutcome
    partition: int | None = None
    before: float | None = None
    after: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    def __str__(self) -> str:
        seconds = self.seconds
        if seconds is None:
            return "-" if self.outcome is GapOutcome.NO_PARTITION else self.outcome.value
        return f"{seconds:.2f} s"


def answer_gap(
    ops: Iterable[Op],
    partition_of: Callable[[str], int],
    partitions: Collection[int],
    at: float,
) -> Gap:
    """The gap of a fault injected at ``at`` that hit ``partitions`` (see the module)."""
    if not partitions:
        return Gap(GapOutcome.NO_PARTITION)
    by_partition: dict[int, list[Op]] = {p: [] for p in partitions}
    for op in ops:
        chosen = by_partition.get(partition_of(op.account))
        if chosen is not None:
            chosen.append(op)
    gaps = [_partition_gap(p, by_partition[p], at) for p in sorted(partitions)]
    for outcome in (GapOutcome.NO_REPLY_AFTER, GapOutcome.MEASURED):
        found = [g for g in gaps if g.outcome is outcome]
        if found:
            return max(found, key=lambda g: g.seconds or 0.0)
    return gaps[0]


def _partition_gap(partition: int, ops: Sequence[Op], at: float) -> Gap:
    times = [a.at for op in ops for a in op.answers]
    waiting = any(
        op.started <= at < (op.deadline if op.ended is None else op.ended)
        and all(a.at > at for a in op.answers)
        for op in ops
    )
    if not waiting:
        return Gap(GapOutcome.IDLE, partition)
    before = max((t for t in times if t <= at), default=None)
    after = min((t for t in times if t > at), default=None)
    if after is None:
        return Gap(GapOutcome.NO_REPLY_AFTER, partition, before=before)
    if before is None:
        return Gap(GapOutcome.NO_REPLY_BEFORE, partition, after=after)
    return Gap(GapOutcome.MEASURED, partition, before, after)


def gap_summary(gaps: Iterable[tuple[str, Gap]]) -> dict[str, tuple[int, float, float]]:
    """Per fault kind, over its measured gaps: (count, median seconds, max seconds)."""
    measured: dict[str, list[float]] = {}
    for kind, gap in gaps:
        if gap.seconds is not None:
            measured.setdefault(kind, []).append(gap.seconds)
    return {k: (len(v), statistics.median(v), max(v)) for k, v in measured.items()}
