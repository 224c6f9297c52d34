"""The coordinator's rebuild step: run shadow rebuilds and switch partitions over.

Per partition, driven one tick at a time from the control record ``rebuild/{p}``:

1. REPLAYING: make sure the shadow ``{app}-rebuild-{p}`` runs (a dead one is restarted and
   resumes from its last checkpoint, up to ``MAX_ATTEMPTS``); watch its progress;
2. when the shadow is within ``tail`` events of the end and the live actor runs, switch:
   record SWITCHING and paused, pause the live actor (it finishes its batch and stops
   taking commands), let the shadow replay the tail and hand its slots over (through Ray's
   object store, straight from the shadow to the actor), switch the actor to the new
   generation, record the generation, resume. Only the tail is replayed during the pause;
3. ``settle`` ends an interrupted switch from what the live actor reports: switched → record
   the new generation; not switched → resume on the old one and replay again later.

Invariants: a shadow is retired and its transactional id fenced once its partition switched
(however the switch ended), so no rebuild producer can write to a live generation; every
request rebuilds into a generation no earlier rebuild of the partition used, so a failed
rebuild's partial checkpoints (maybe of other code) are never resumed by the next request;
an actor is resumed only on the generation the control topic records for it.

Commands are never interleaved with replayed events: the live actor takes none between its
pause and its resume, and the hand-over reflects exactly the events it had committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import ray

from actors.admin import ensure_specs
from actors.control_store import ControlWriter
from actors.messages import (
    PartitionStats,
    Paused,
    RebuildProgress,
    ShadowPhase,
    ShadowProgress,
)
from actors.ray_state import lookup_actor
from actors.shadow import ShadowRebuild, fence_rebuild
from actors.supervisor import reserved, retire
from topology.control import DesiredState, RebuildPhase, RebuildRecord
from topology.names import NAMESPACE, Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicLayout

__all__ = ["MAX_ATTEMPTS", "RebuildDriver"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


class RebuildDriver:
    """Drives every active rebuild of one application; ``step`` runs in the coordinator's
    loop thread, ``request`` and ``progress`` on its method thread (under ``lock``)."""

    def __init__(
        self,
        settings: Settings,
        desired: DesiredState,
        writer: ControlWriter,
        lock: threading.RLock,
        *,
        aggregate: AnyAggregate,
        tail: int = 2_000,
    ) -> None:
        self.settings = settings
        self.layout = TopicLayout.of(settings)
        self.names = Names.of(settings)
        self.desired = desired
        self.writer = writer
        self.lock = lock
        self.aggregate = aggregate
        self.tail = tail
        self._aggregates: dict[int, AnyAggregate] = {}
        self._progress: dict[int, tuple[ShadowProgress, dict[str, float]]] = {}

    # -- requests (method thread) ------------------------------------------------------------

    def request(self, partitions: list[int], aggregate: AnyAggregate | None = None) -> list[int]:
        """Start a rebuild of each partition not already being rebuilt; returns those."""
        started = []
        with self.lock:
            for p in partitions:
                current = self.desired.rebuilds.get(p)
                if current is not None and current.phase.active:
                    continue
                generation = self._fresh_generation(p)
                record = RebuildRecord(p, generation, RebuildPhase.REPLAYING, time.time())
                self.writer.write(record)
                self.desired.apply(record)
                self._progress.pop(p, None)
                if aggregate is not None:
                    self._aggregates[p] = aggregate
                started.append(p)
        return started

    def _fresh_generation(self, p: int) -> int:
        """A generation above the live one and above any an earlier rebuild wrote into."""
        earlier = self.desired.rebuilds.get(p)
        used = earlier.generation if earlier is not None else 0
        return max(self.desired.partition(p).generation, used) + 1

    def progress(self) -> dict[int, RebuildProgress]:
        """Per partition: the control record and, while it runs, the shadow's progress."""
        with self.lock:
            out = {}
            for p, record in self.desired.rebuilds.items():
                shadow, steps = self._progress.get(p, (None, {}))
                out[p] = RebuildProgress(record=record, shadow=shadow, pause_steps_ms=steps)
            return out

    def active(self) -> set[int]:
        with self.lock:
            return {p for p, r in self.desired.rebuilds.items() if r.phase.active}

    # -- the loop's step ---------------------------------------------------------------------

    def step(self, live: Callable[[int], Any | None]) -> None:
        """Advance every active rebuild; ``live(p)`` is partition p's running actor or None."""
        for p in sorted(self.active()):
            try:
                self._drive(p, live(p))
            except Exception:
                log.exception("partition %d: rebuild step failed", p)

    def stop_all(self) -> None:
        """Stop every shadow (their checkpoints stay for a resume)."""
        for p in range(self.settings.partitions):
            retire(self.names.shadow_actor(p), graceful=True, timeout=10)

    def _drive(self, p: int, handle: Any | None) -> None:
        record = self.desired.rebuilds[p]
        if record.phase is RebuildPhase.SWITCHING:
            if handle is not None:
                self._settle(p, handle, error="the switch was interrupted")
            return
        shadow = lookup_actor(self.names.shadow_actor(p), NAMESPACE)
        if shadow is None:
            self._start_shadow(p, record)
            return
        try:
            progress: ShadowProgress = ray.get(shadow.progress.remote(), timeout=2)
        except ray.exceptions.GetTimeoutError:
            return  # still constructing (fencing, resuming)
        except ray.exceptions.RayActorError as e:
            self._record(p, error=f"the shadow died: {e}")
            return
        if progress.generation != record.generation:  # left over from another rebuild
            retire(self.names.shadow_actor(p), graceful=False)
            return
        with self.lock:
            self._progress[p] = (progress, {})
        if progress.phase is ShadowPhase.FAILED:
            retire(self.names.shadow_actor(p), graceful=False)
            self._record(p, error=progress.error)
            return
        near = progress.end - progress.position <= self.tail
        if handle is not None and near and progress.phase.replaying:
            self._switch(p, record, shadow, handle)

    def _start_shadow(self, p: int, record: RebuildRecord) -> None:
        if record.attempts >= MAX_ATTEMPTS:
            self._write(msgspec.structs.replace(record, phase=RebuildPhase.FAILED))
            log.error("partition %d: rebuild failed %d times; keeping its generation", p, 3)
            return
        ensure_specs(self.settings, [self.layout.snapshot_spec(record.generation)])
        remote: Any = ray.remote(ShadowRebuild)
        remote.options(
            name=self.names.shadow_actor(p),
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=0,
            num_cpus=0,
            **reserved(self.settings),  # it holds a partition's state too
        ).remote(self.settings, p, record.generation, self._aggregates.get(p, self.aggregate))
        self._write(msgspec.structs.replace(record, attempts=record.attempts + 1))
        log.info("partition %d: shadow rebuild into generation %d started", p, record.generation)

    def _switch(self, p: int, record: RebuildRecord, shadow: Any, handle: Any) -> None:
        partition = self.desired.partition(p)
        self._write(
            msgspec.structs.replace(record, phase=RebuildPhase.SWITCHING),
            msgspec.structs.replace(partition, paused=True),
        )
        marks = [time.perf_counter()]
        try:
            # the batch in flight ends first; the tail is replayed up to the last event the
            # partition committed, even if its commit markers have not landed yet
            paused: Paused = ray.get(handle.pause.remote(), timeout=30)
            marks.append(time.perf_counter())
            handover = shadow.finish.remote(paused.events_end)  # the tail, the last checkpoint
            ray.wait([handover], timeout=60)
            marks.append(time.perf_counter())
            ray.get(
                handle.switch_generation.remote(
                    record.generation, handover, self._aggregates.get(p)
                ),
                timeout=60,
            )
            marks.append(time.perf_counter())
            self._write(  # before resuming: a restarted actor must find the new generation
                msgspec.structs.replace(record, phase=RebuildPhase.DONE, finished_at=time.time()),
                msgspec.structs.replace(partition, generation=record.generation, paused=False),
            )
            marks.append(time.perf_counter())
            ray.get(handle.resume.remote(record.generation), timeout=30)
            marks.append(time.perf_counter())
        except Exception as e:
            log.exception("partition %d: switch to generation %d failed", p, record.generation)
            if self.desired.rebuilds[p].phase is RebuildPhase.DONE:
                # Recorded: the coordinator's resume step brings the actor to that generation.
                self._retire_shadow(p)
                return
            self._settle(p, handle, error=f"{type(e).__name__}: {e}")
            return
        pause_ms = (marks[-1] - marks[0]) * 1000.0
        steps = ("pause", "tail", "switch", "record", "resume")
        breakdown = {
            step: round((marks[i + 1] - marks[i]) * 1000.0, 1) for i, step in enumerate(steps)
        }
        summary: ShadowProgress = ray.get(shadow.progress.remote(), timeout=10)
        self._write(
            msgspec.structs.replace(
                self.desired.rebuilds[p],
                events=summary.replayed,
                replay_seconds=summary.seconds,
                pause_ms=pause_ms,
            )
        )
        with self.lock:
            self._progress[p] = (summary, breakdown)
            self._aggregates.pop(p, None)
        self._retire_shadow(p)
        log.info(
            "partition %d: switched to generation %d after replaying %d events "
            "(%.0f events/s); paused %.1f ms %s",
            p,
            record.generation,
            summary.replayed,
            summary.replayed / summary.seconds if summary.seconds else 0.0,
            pause_ms,
            breakdown,
        )

    def _settle(self, p: int, handle: Any, *, error: str) -> None:
        """End a switch that did not complete, from what the live actor reports."""
        record = self.desired.rebuilds[p]
        partition = self.desired.partition(p)
        stats: PartitionStats = ray.get(handle.stats.remote(), timeout=30)
        if stats.generation == record.generation:
            self._write(
                msgspec.structs.replace(
                    record, phase=RebuildPhase.DONE, finished_at=time.time(), error=None
                ),
                msgspec.structs.replace(partition, generation=record.generation, paused=False),
            )
            self._retire_shadow(p)
        else:
            phase = RebuildPhase.REPLAYING
            if record.attempts >= MAX_ATTEMPTS:
                phase = RebuildPhase.FAILED
            self._write(
                msgspec.structs.replace(record, phase=phase, error=error),
                msgspec.structs.replace(partition, paused=False),
            )
            retire(self.names.shadow_actor(p), graceful=False)
        ray.get(handle.resume.remote(self.desired.partition(p).generation), timeout=30)

    def _retire_shadow(self, p: int) -> None:
        """The switch is recorded: end the shadow and fence its transactional id."""
        retire(self.names.shadow_actor(p), graceful=True, timeout=10)
        fence_rebuild(self.settings, p)
        with self.lock:
            self._aggregates.pop(p, None)

    def _record(self, p: int, *, error: str | None) -> None:
        record = self.desired.rebuilds[p]
        self._write(msgspec.structs.replace(record, error=error))

    def _write(self, *records: Any) -> None:
        with self.lock:
            self.writer.write(*records)
            for r in records:
                self.desired.apply(r)
