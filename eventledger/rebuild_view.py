"""Follow rebuilds from the CLI: one rich progress bar of events replayed per partition."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["follow_rebuilds"]

from actors.messages import RebuildProgress
from topology.control import RebuildPhase

_FINAL = (RebuildPhase.DONE, RebuildPhase.FAILED)


def follow_rebuilds(
    console: Console,
    coordinator: Any,
    requested: list[int] | None,
    started: list[int],
    *,
    timeout: float,
    poll: float = 0.25,
) -> dict[int, RebuildProgress]:
    """Show the rebuilds of ``started`` (and any already running among ``requested``)
    until each is done or failed; returns their final records."""
    import ray

    progress: dict[int, RebuildProgress] = ray.get(coordinator.rebuild_progress.remote())
    running = {
        p
        for p, r in progress.items()
        if r.phase not in _FINAL and (requested is None or p in requested)
    }
    targets = sorted(set(started) | running)
    if not targets:
        return {}
    deadline = time.monotonic() + timeout
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events · {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )
    tasks: dict[int, TaskID] = {}
    with bars:
        for p in targets:
            tasks[p] = bars.add_task(f"partition {p}", total=None, rate="")
        while True:
            for p in targets:
                record = progress.get(p)
                if record is None:
                    continue
                shadow = record.shadow
                end = (shadow.end if shadow else 0) or record.record.events or None
                position = shadow.position if shadow else 0
                if record.phase is RebuildPhase.DONE:
                    position = end = max(position, end or 0, 1)
                seconds = shadow.seconds if shadow else 0.0
                rate = f"{shadow.replayed / seconds:,.0f}/s" if shadow and seconds else ""
                bars.update(
                    tasks[p],
                    total=end,
                    completed=position,
                    rate=rate,
                    description=f"partition {p} → g{record.record.generation} {record.phase}",
                )
            if all(p in progress and progress[p].phase in _FINAL for p in targets):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"rebuild not finished after {timeout:.0f}s")
            time.sleep(poll)
            progress = ray.get(coordinator.rebuild_progress.remote(), timeout=60)
    return {p: progress[p] for p in targets}
