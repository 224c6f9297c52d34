"""Follow a repartition from the CLI: one rich progress bar per source partition (slots
moved of its slots to move, moves published, the last legs' pauses). A growth and a shrink
show alike; a shrink's sources are the partitions it drains, named drained once every one
of their moves is published."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from actors.messages import RepartitionProgress
from topology.control import MoveState, RepartitionRecord

__all__ = ["SourceProgress", "follow_repartition", "sources"]


class SourceProgress(msgspec.Struct, frozen=True, kw_only=True):
    """One source partition's share of a repartition: its slots published elsewhere of
    those it gives, its moves published of its moves, and the pauses of its latest
    handed-off move's legs (None: not reported). ``drained``: the partition is at or above
    the repartition's target and every one of its moves is published (the plan gives away
    all its slots)."""

    partition: int
    slots_moved: int
    slots: int
    moves_done: int
    moves: int
    handoff_pause_ms: float | None = None
    install_pause_ms: float | None = None
    drained: bool = False


def sources(record: RepartitionRecord) -> list[SourceProgress]:
    """Per source partition of ``record``'s moves, ascending."""
    out = []
    for p in sorted({m.source for m in record.moves}):
        mine = [m for m in record.moves if m.source == p]
        done = [m for m in mine if m.state is MoveState.PUBLISHED]
        handed = [m for m in mine if m.state.reached(MoveState.HANDED_OFF)]
        last = max(handed, key=lambda m: m.handed_off_at) if handed else None
        out.append(
            SourceProgress(
                partition=p,
                slots_moved=sum(len(m.slots) for m in done),
                slots=sum(len(m.slots) for m in mine),
                moves_done=len(done),
                moves=len(mine),
                handoff_pause_ms=last.handoff_pause_ms if last else None,
                install_pause_ms=last.install_pause_ms if last else None,
                drained=p >= record.to_partitions and len(done) == len(mine),
            )
        )
    return out


def _pauses(s: SourceProgress) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    if s.handoff_pause_ms is None and s.install_pause_ms is None:
        return ""
    return f"· pauses {ms(s.handoff_pause_ms)} / {ms(s.install_pause_ms)}"


def follow_repartition(
    console: Console, coordinator: Any, *, timeout: float, poll: float = 0.25
) -> RepartitionProgress:
    """Show the repartition under way until it is done or failed; returns its progress.
    Raises TimeoutError (with the phase and the coordinator's last error) after
    ``timeout`` seconds."""
    import ray

    deadline = time.monotonic() + timeout
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("slots · {task.fields[moves]} {task.fields[pauses]}"),
        TimeElapsedColumn(),
        console=console,
    )
    tasks: dict[int, TaskID] = {}
    with bars:
        phase = bars.add_task("repartition", total=None, moves="", pauses="")
        while True:
            progress: RepartitionProgress = ray.get(
                coordinator.repartition_progress.remote(), timeout=60
            )
            record = progress.record
            if record is None:
                raise RuntimeError("the coordinator records no repartition")
            shares = sources(record)
            bars.update(
                phase,
                description=(
                    f"{record.from_partitions} → {record.to_partitions} partitions {record.phase}"
                ),
                total=sum(s.slots for s in shares) or None,
                completed=sum(s.slots_moved for s in shares),
                moves=f"{record.done()}/{len(record.moves)} moves",
            )
            for s in shares:
                if s.partition not in tasks:
                    tasks[s.partition] = bars.add_task(
                        f"partition {s.partition}", total=s.slots, moves="", pauses=""
                    )
                bars.update(
                    tasks[s.partition],
                    description=f"partition {s.partition}" + " drained" * s.drained,
                    completed=s.slots_moved,
                    moves=f"{s.moves_done}/{s.moves} moves",
                    pauses=_pauses(s),
                )
            if not record.phase.active:
                return progress
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"repartition not finished after {timeout:.0f}s ({record.phase}, "
                    f"{record.done()}/{len(record.moves)} moves)"
                    + (
                        f"; the coordinator's last error: {progress.error}"
                        if progress.error
                        else ""
                    )
                )
            time.sleep(poll)
