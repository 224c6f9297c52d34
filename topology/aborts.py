"""What a partition does when its transactions keep aborting, pure: back off, then isolate
the first record in a batch of its own, then set that record aside (dead-letter it), and if
the record after it fails alone as well, the cause is not a record: block the partition with
the error, for an operator, rather than spin or reject every command.

Invariant: a partition never retries an aborting batch without a growing pause, and never
sets aside a record that was not first retried alone `set_aside_after` times.
"""

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AbortAction", "AbortPolicy"]


class AbortAction(StrEnum):
    """What to do after an abort."""

    RETRY = "retry"  # the same batch again, after `AbortPolicy.pause()`
    ISOLATE = "isolate"  # the first record alone, after the pause
    SET_ASIDE = "set_aside"  # dead-letter the first record, then go on
    BLOCK = "block"  # stop taking commands: every transaction aborts


@dataclass
class AbortPolicy:
    """Counts aborts in a row. `isolate_after` aborts of a batch isolate its first record;
    `set_aside_after` aborts of that record alone set it aside; a set-aside record followed
    by another that reaches the same count, with no batch that wrote events between them
    (repeated replies and refusals write none), blocks the partition."""

    isolate_after: int = 3
    set_aside_after: int = 3
    base_pause: float = 0.05
    max_pause: float = 5.0
    aborts: int = 0
    alone: int = 0  # aborts of an isolated single-record batch, in a row
    set_aside_last: bool = False  # the last thing committed was a set-aside record

    def aborted(self, batch_size: int) -> AbortAction:
        """Record an abort of a batch of `batch_size` records; what to do next."""
        self.aborts += 1
        if batch_size == 1 and self.aborts > self.isolate_after:
            self.alone += 1
            if self.alone >= self.set_aside_after:
                return AbortAction.BLOCK if self.set_aside_last else AbortAction.SET_ASIDE
            return AbortAction.ISOLATE
        if self.aborts >= self.isolate_after:
            return AbortAction.ISOLATE
        return AbortAction.RETRY

    def pause(self) -> float:
        """Seconds to wait before the next attempt: doubling from `base_pause`."""
        return float(min(self.base_pause * 2 ** max(self.aborts - 1, 0), self.max_pause))

    def batch_limit(self, default: int) -> int:
        """How many records the next batch may hold."""
        return 1 if self.aborts >= self.isolate_after else default

    def committed(self, *, set_aside: bool = False, wrote_events: bool = True) -> None:
        """A transaction committed: of a set-aside record, when `set_aside`; else a batch
        that wrote events or not."""
        self.aborts = self.alone = 0
        if set_aside:
            self.set_aside_last = True
        elif wrote_events:
            self.set_aside_last = False
