"""The answer gap of a fault: how long the partitions it hit gave clients no reply.

For a fault that struck at ``at``, lasted until ``until`` (its recovery, as the nemesis saw
it) and hit partitions ``P``, each partition ``p`` of ``P`` is judged on the replies clients
received to commands sent to ``p`` (an op's account decides its partition; every reply the
op received counts, at its ``Answer.at``). Its window runs from the last such reply at or
before ``at`` to the first one after ``until``; the gap of ``p`` is the **longest silence**
in that window: the largest interval between two consecutive replies. Not simply "the
first reply after ``at``": replies of a batch committed just before the fault may still be
on their way, and arrive after it.

It is measured only when a client was waiting on ``p`` at ``at``: some command to ``p`` was
sent at or before ``at``, had no reply by then and was still being tried (its end, or its
budget's end, lies after ``at``). Otherwise ``p`` was idle, and a silence would say nothing
of the fault. A partition with no reply after ``until`` in the whole history is
``NO_REPLY_AFTER``, unless every command waiting at ``at`` was answered (before ``until``: a
takeover can answer before the nemesis sees its recovery), when the window ends at the
last of those answers; one that never replied at or before ``at`` is ``NO_REPLY_BEFORE``. The
fault's gap is that of its worst partition: ``NO_REPLY_AFTER`` if any partition has it,
else the largest measured gap, else the first other outcome. Pure: the history and the
partition of each account come in as arguments.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from eventledger.torture.history import Op

__all__ = ["Gap", "GapOutcome", "answer_gap", "gap_summary", "longest_silence"]


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
    until: float | None = None,
) -> Gap:
    """The gap of a fault that struck at ``at``, recovered at ``until`` (None: at ``at``)
    and hit ``partitions`` (see the module)."""
    if not partitions:
        return Gap(GapOutcome.NO_PARTITION)
    by_partition: dict[int, list[Op]] = {p: [] for p in partitions}
    for op in ops:
        chosen = by_partition.get(partition_of(op.account))
        if chosen is not None:
            chosen.append(op)
    end = at if until is None else max(at, until)
    gaps = [_partition_gap(p, by_partition[p], at, end) for p in sorted(partitions)]
    for outcome in (GapOutcome.NO_REPLY_AFTER, GapOutcome.MEASURED):
        found = [g for g in gaps if g.outcome is outcome]
        if found:
            return max(found, key=lambda g: g.seconds or 0.0)
    return gaps[0]


def longest_silence(
    times: Sequence[float], at: float, until: float
) -> tuple[float | None, float | None]:
    """Over the window from the last of ``times`` at or before ``at`` to the first after
    ``until`` (``until`` ≥ ``at``), the two consecutive times furthest apart. A window
    without a start or an end gives its ends as they are: (the last at or before ``at`` or
    None, the first after ``until`` or None)."""
    ordered = sorted(times)
    first = bisect.bisect_right(ordered, at)  # ordered[first - 1] is the last at or before
    last = bisect.bisect_right(ordered, until)  # ordered[last] is the first after ``until``
    if first == 0 or last == len(ordered):
        return (
            ordered[first - 1] if first > 0 else None,
            ordered[last] if last < len(ordered) else None,
        )
    window = ordered[first - 1 : last + 1]
    widest = max(range(len(window) - 1), key=lambda k: window[k + 1] - window[k])
    return window[widest], window[widest + 1]


def _partition_gap(partition: int, ops: Sequence[Op], at: float, until: float) -> Gap:
    waiting = [
        op
        for op in ops
        if op.started <= at < (op.deadline if op.ended is None else op.ended)
        and all(a.at > at for a in op.answers)
    ]
    if not waiting:
        return Gap(GapOutcome.IDLE, partition)
    times = [a.at for op in ops for a in op.answers]
    before, after = longest_silence(times, at, until)
    if after is None and all(op.answers for op in waiting):
        # Every command waiting at the fault was answered, before the recovery the nemesis
        # saw (a standby took over sooner), and the run then ended: the window ends at the
        # last of those answers.
        resolved = max(min(a.at for a in op.answers) for op in waiting)
        before, after = longest_silence(times, at, max([at, *(t for t in times if t < resolved)]))
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
