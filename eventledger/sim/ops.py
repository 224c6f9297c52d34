"""The simulator's operations: what one step does. A run is a list of them, so a failing
run replays exactly from its trace, and a shortened trace is a smaller reproduction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventledger.sim.partition import Fault

__all__ = [
    "Advance",
    "Batch",
    "Crash",
    "DriverCrash",
    "DriverTick",
    "Follow",
    "Forget",
    "Learn",
    "MoveOp",
    "Op",
    "Rebuild",
    "RebuildFinish",
    "RebuildOp",
    "RebuildPause",
    "RebuildResume",
    "RebuildSwitch",
    "Repartition",
    "Resume",
    "Send",
    "Settle",
    "ShadowCrash",
    "ShadowReplay",
    "Stop",
    "Takeover",
    "Wake",
]


@dataclass(frozen=True)
class Send:
    """Client `lane` sends `command` to `account` under `command_id`, first tried at
    `first_attempt_ms` (a retry sends the same three again)."""

    lane: int
    account: str
    command: Any
    command_id: str
    first_attempt_ms: int
    expected_version: int | None = None
    foreign: bool = False  # sent by a producer that uses Kafka's layout over today's count

    def __str__(self) -> str:
        expected = "" if self.expected_version is None else f" expect v{self.expected_version}"
        foreign = " (foreign producer)" if self.foreign else ""
        return (
            f"lane {self.lane} → {self.account!r}: {self.command!r} id={self.command_id!r} "
            f"first={self.first_attempt_ms}{expected}{foreign}"
        )


@dataclass(frozen=True)
class Batch:
    """Partition `partition` runs one batch of at most `limit` records (mixed by `mix`)."""

    partition: int
    limit: int
    mix: int
    fault: Fault = Fault.NONE

    def __str__(self) -> str:
        fault = "" if self.fault is Fault.NONE else f" [{self.fault}]"
        return f"p{self.partition} batch ≤{self.limit}{fault}"


@dataclass(frozen=True)
class Advance:
    """Simulated wall time moves on by `ms`."""

    ms: int

    def __str__(self) -> str:
        return f"time +{self.ms} ms"


@dataclass(frozen=True)
class Stop:
    """Partition `partition` stops (its process is paused: no batch runs)."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} stops"


@dataclass(frozen=True)
class Resume:
    """Partition `partition` runs again."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} resumes"


@dataclass(frozen=True)
class Crash:
    """Partition `partition`'s worker dies between batches and restores (`forget`: its new
    disk restores only the ids still within the window)."""

    partition: int
    forget: bool = False

    def __str__(self) -> str:
        return f"p{self.partition} crashes and restores" + (
            " (ids past the window lost)" * self.forget
        )


@dataclass(frozen=True)
class Forget:
    """Partition `partition`'s id memory drops the ids past their window (as its TTL may)."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} forgets the ids past the window"


@dataclass(frozen=True)
class Rebuild:
    """An operator asks for an online rebuild of partition `partition` (into a new
    generation; nothing if one is under way)."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} rebuild requested"


@dataclass(frozen=True)
class ShadowReplay:
    """Partition `partition`'s shadow (started, resuming, if there is none) folds one fetch
    of up to `records` events (None: all there are to read); then, with `checkpoint`,
    writes a checkpoint."""

    partition: int
    records: int | None
    checkpoint: bool = False

    def __str__(self) -> str:
        most = "all" if self.records is None else f"≤{self.records}"
        return f"p{self.partition} shadow replays {most} events" + " and checkpoints" * (
            self.checkpoint
        )


@dataclass(frozen=True)
class ShadowCrash:
    """Partition `partition`'s shadow dies (a switch under way fails and is settled: the
    partition resumes on its generation)."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} shadow dies"


@dataclass(frozen=True)
class RebuildPause:
    """The rebuild's switch begins: partition `partition` pauses between batches."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} pauses for its switch"


@dataclass(frozen=True)
class RebuildFinish:
    """Partition `partition`'s shadow replays the tail (`finish`; it may have to wait)."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} shadow finishes the tail"


@dataclass(frozen=True)
class RebuildSwitch:
    """Partition `partition` switches to the hand-over (or refuses it: the switch fails)."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} switches to its rebuilt generation"


@dataclass(frozen=True)
class RebuildResume:
    """Partition `partition`, switched, resumes on its new generation."""

    partition: int

    def __str__(self) -> str:
        return f"p{self.partition} resumes on its rebuilt generation"


@dataclass(frozen=True)
class Settle:
    """An operator settles the oldest lost leg of partition `partition` not settled yet:
    delivered as it was, or (`refund`) refused so that its money goes back."""

    partition: int
    refund: bool

    def __str__(self) -> str:
        how = "refunds" if self.refund else "redrives"
        return f"operator {how} the oldest lost leg of p{self.partition}"


@dataclass(frozen=True)
class Follow:
    """Partition `partition`'s standby fetches up to `records` committed records of its
    snapshots and of each replies lane (None: all there are)."""

    partition: int
    records: int | None

    def __str__(self) -> str:
        most = "all" if self.records is None else f"≤{self.records}"
        return f"p{self.partition} standby reads {most} records"


@dataclass(frozen=True)
class Takeover:
    """Partition `partition`'s writer is declared dead (it may be only paused: it becomes
    a zombie) and its standby is promoted; a new standby starts following. `midway`: the
    writer was paused inside a batch (`limit`, `mix`), its transaction open."""

    partition: int
    midway: bool = False
    limit: int = 8
    mix: int = 0

    def __str__(self) -> str:
        how = f" paused inside a batch ≤{self.limit}" if self.midway else ""
        return f"p{self.partition} writer declared dead{how}; its standby takes over"


@dataclass(frozen=True)
class Wake:
    """Partition `partition`'s last writer taken over wakes (a zombie): it commits the batch
    it was paused in, or runs one (`limit`, `mix`). It must be fenced and write nothing."""

    partition: int
    limit: int = 8
    mix: int = 0

    def __str__(self) -> str:
        return f"p{self.partition} zombie writer wakes and tries a batch ≤{self.limit}"


RebuildOp = (
    Rebuild
    | ShadowReplay
    | ShadowCrash
    | RebuildPause
    | RebuildFinish
    | RebuildSwitch
    | RebuildResume
)
"""A step of a partition's online rebuild (`eventledger.sim.rebuild`)."""


@dataclass(frozen=True)
class Repartition:
    """An operator asks to grow or shrink the application to `partitions`
    (`RepartitionDriver.request`, `parallel` sources at a time; refused while a rebuild runs
    or another is under way)."""

    partitions: int
    parallel: int

    def __str__(self) -> str:
        return f"repartition to {self.partitions} requested (parallel {self.parallel})"


@dataclass(frozen=True)
class DriverTick:
    """One tick of the coordinator's repartition step (the real `RepartitionDriver.step`);
    `flaky`: its next control write commits but reports a failure (a lost answer)."""

    flaky: bool = False

    def __str__(self) -> str:
        return "repartition driver ticks" + " (its write's answer is lost)" * self.flaky


@dataclass(frozen=True)
class DriverCrash:
    """The coordinator dies and restarts: a new driver reads the control records back."""

    def __str__(self) -> str:
        return "the coordinator crashes and restarts its repartition driver"


@dataclass(frozen=True)
class Learn:
    """Client `lane` reads the published routing table (until then it routes by an older one)."""

    lane: int

    def __str__(self) -> str:
        return f"lane {self.lane} learns the published routing table"


MoveOp = Repartition | DriverTick | DriverCrash | Learn
"""A step of the coordinator's repartition, or a client that learns its table
(`eventledger.sim.moves`)."""

Op = (
    Send
    | Settle
    | Batch
    | Advance
    | Stop
    | Resume
    | Crash
    | Forget
    | RebuildOp
    | Follow
    | Takeover
    | Wake
    | MoveOp
)
