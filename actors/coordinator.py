"""The coordinator: one named, detached Ray actor per application, ``{app}-coordinator``.

A reconcile loop in the manner of Ray Serve's controller. Every tick, in named steps, each
logged-and-skipped on error so that the loop goes on:

1. ``observe``: alive Ray nodes; each partition actor's Ray state, node, restarts and stats;
   the commands topic's end offsets (for lag);
2. ``place``: ``topology.placement.plan`` decides,
   ``actors.supervisor`` does: start missing actors, replace broken or stranded ones,
   move one actor at a time to even the load;
3. ``rebuild``: advance shadow rebuilds and switch partitions over (``RebuildDriver``);
4. ``resume``: a partition left paused by an interrupted switch is resumed on the desired
   generation; an actor serving another generation than the desired one is replaced.

Errors of a step are logged and the loop goes on, except for the control writer: when it is
fenced (another coordinator took over) the loop stops, and when its writes keep failing
(``MAX_WRITE_FAILURES`` in a row, each on a freshly created producer) the coordinator ends
its process so that Ray restarts it, rather than supervise on without recording anything.

The desired state (generations, paused flags, placements, rebuilds) lives in the compacted
control topic, written before it is acted on, so a restarted coordinator or a new Ray cluster
picks it up where it was. ``Coordinator`` is a plain class; ``deploy_coordinator`` runs it as
the detached actor (restarted by Ray without limit: its constructor reads the desired state).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import ray
from confluent_kafka import Consumer, TopicPartition
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import tracing
from actors.admin import ensure_specs, ensure_topics
from actors.control_store import ControlWriter, read_desired
from actors.history import deploy_history, stop_history
from actors.kafka import consumer_config
from actors.messages import PartitionStats, RebuildProgress, ServiceStatus, StatusRow
from actors.metrics import observe_lag
from actors.ray_state import alive_nodes, current_node_id, lookup_actor
from actors.rebuild_driver import RebuildDriver
from actors.supervisor import (
    PartitionActual,
    observe_partitions,
    retire,
    start_partition,
)
from actors.watermarks import watermarks
from topology.control import DesiredState, PartitionRecord, ServiceRecord
from topology.names import NAMESPACE, Names
from topology.placement import ActorPhase, Move, Replace, Start, plan
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = [
    "MAX_WRITE_FAILURES",
    "ControlPlaneError",
    "Coordinator",
    "deploy_coordinator",
    "find_coordinator",
    "stop_service",
]

log = logging.getLogger(__name__)


MAX_WRITE_FAILURES = 5
"""Control writes in a row that may fail (each on a new producer) before the coordinator
gives up on its writer and has Ray restart it."""


class ControlPlaneError(RuntimeError):
    """The coordinator cannot record its decisions any more (fenced, or writes keep failing):
    it must not go on supervising."""

    def __init__(self, message: str, *, fenced: bool) -> None:
        super().__init__(message)
        self.fenced = fenced


def _end_process(error: ControlPlaneError) -> None:
    """Inside a Ray actor, end the process so that Ray restarts the coordinator (its
    constructor fences and re-reads the desired state); a plain object just stops."""
    if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        log.critical("coordinator: %s; ending the process for Ray to restart it", error)
        logging.shutdown()
        os._exit(70)


@dataclass
class _Tick:
    nodes: list[str]
    actual: list[PartitionActual]
    ends: dict[int, int]
    at: float


class Coordinator:
    """Supervises the partition actors of the application in ``settings``."""

    def __init__(
        self,
        settings: Settings,
        aggregate: AnyAggregate,
        *,
        tick_seconds: float = 0.5,
        start: bool = True,
    ) -> None:
        self.settings = settings
        self.aggregate = aggregate
        self.tick_seconds = tick_seconds
        self.layout = TopicLayout.of(settings)
        self.names = Names.of(settings)
        self.started_at = time.time()
        self.ticks = 0
        self.errors: dict[str, str] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._serving = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: _Tick | None = None
        self._stale_seen: set[tuple[int, str, int]] = set()
        self._aggregates: dict[int, int] = {}  # last reported per partition: sizes memory=
        tracing.configure_telemetry("eventledger")
        observe_lag(
            settings.app_id,
            self.layout.name(TopicKind.COMMANDS),
            self.names.commands_group,
            self.lags,
        )
        ensure_topics(settings, self.layout)
        self.writer = ControlWriter(settings)  # fences an earlier coordinator's writes
        self.desired = read_desired(settings)
        service = self.desired.service
        if service is not None and service.partitions != settings.partitions:
            raise ValueError(
                f"{settings.app_id} has {service.partitions} partitions, not "
                f"{settings.partitions}: repartitioning needs a new application id"
            )
        generations = {r.generation for r in self.desired.partitions.values() if r.generation}
        if generations:
            ensure_specs(settings, [self.layout.snapshot_spec(g) for g in generations])
        self._write(ServiceRecord(settings.partitions, True, time.time()))
        self.rebuilds = RebuildDriver(
            settings, self.desired, self.writer, self._lock, aggregate=aggregate
        )
        self._watermarks = Consumer(
            consumer_config(settings, group_id=self.names.group("coordinator"))
        )
        log.info(
            "coordinator of %s: %d partitions, generations %s",
            settings.app_id,
            settings.partitions,
            {p: r.generation for p, r in sorted(self.desired.partitions.items())},
        )
        if start:
            self.start()

    # -- the loop --------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="reconcile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except ControlPlaneError as e:
                log.critical("coordinator of %s stops: %s", self.settings.app_id, e)
                self._stop.set()
                if not e.fenced:
                    _end_process(e)
                return
            self._stop.wait(max(0.0, self.tick_seconds - (time.monotonic() - began)))

    def tick(self) -> None:
        """One reconcile pass: each step runs even if an earlier one failed. Raises
        ControlPlaneError when the control writer is fenced or keeps failing."""
        tick = self._step("observe", self._observe)
        if tick is not None:
            self._step("place", lambda: self._place(tick))
            self._step("rebuild", lambda: self.rebuilds.step(lambda p: self._live(tick, p)))
            self._step("resume", lambda: self._resume(tick))
            with self._lock:
                self.ticks += 1
        self._check_writer()

    def _check_writer(self) -> None:
        writer = self.writer
        broken: ControlPlaneError | None = None
        if writer.fenced:
            broken = ControlPlaneError("the control writer is fenced", fenced=True)
        elif writer.failures >= MAX_WRITE_FAILURES:
            broken = ControlPlaneError(
                f"{writer.failures} control writes in a row failed", fenced=False
            )
        if broken is not None:
            with self._lock:
                self.errors["control"] = str(broken)
            raise broken

    def _step(self, name: str, fn: Any) -> Any:
        try:
            result = fn()
        except Exception as e:
            log.exception("coordinator step %s failed", name)
            with self._lock:
                self.errors[name] = f"{type(e).__name__}: {e}"
            return None
        with self._lock:
            self.errors.pop(name, None)
        return result

    def _observe(self) -> _Tick:
        # Only nodes that offer the partition resource can take a partition actor.
        nodes = alive_nodes(self.settings.partition_resource)
        with self._lock:
            if nodes:
                self.errors.pop("resources", None)
            elif "resources" not in self.errors:
                self.errors["resources"] = (
                    f"no alive Ray node offers the resource {self.settings.partition_resource!r}"
                )
                log.warning("%s; partitions wait for one", self.errors["resources"])
        actual = observe_partitions(self.settings.app_id, self.settings.partitions)
        for a in actual:
            if a.stats is not None:
                self._aggregates[a.partition] = a.stats.aggregates
        topic = self.layout.name(TopicKind.COMMANDS)
        ends = {}
        for p in range(self.settings.partitions):
            ends[p] = watermarks(self._watermarks, TopicPartition(topic, p), 5)[1]
        tick = _Tick(nodes, actual, ends, time.time())
        with self._lock:
            self._last = tick
        if all(a.observed.phase is ActorPhase.RUNNING for a in actual):
            self._serving.set()
        return tick

    def _place(self, tick: _Tick) -> None:
        with self._lock:
            placed = {p: r.node_id for p, r in self.desired.partitions.items()}
            frozen = self.rebuilds.active() | {
                p for p, r in self.desired.partitions.items() if r.paused
            }
        observed = {a.partition: a.observed for a in tick.actual}
        for action in plan(self.settings.partitions, observed, tick.nodes, placed, frozen=frozen):
            name = self.names.partition_actor(action.partition)
            match action:
                case Start(partition=p, node_id=node):
                    log.info("partition %d: starting on node %s", p, node[:8])
                case Replace(partition=p, node_id=node, reason=reason):
                    log.warning("partition %d: replacing its actor (%s)", p, reason)
                    retire(name, graceful=False)
                case Move(partition=p, source=source, target=node):
                    log.info("partition %d: moving from %s to %s", p, source[:8], node[:8])
                    retire(name, graceful=True)
            record = self.desired.partition(p)
            self._write(msgspec.structs.replace(record, node_id=node, starts=record.starts + 1))
            start_partition(self.settings, p, node, self.aggregate, self._aggregates.get(p, 0))

    def _resume(self, tick: _Tick) -> None:
        """Resume partitions left paused by an interrupted switch; rebuild a partition whose
        actor had to fold its events because its snapshots were of another state schema."""
        active = self.rebuilds.active()
        for a in tick.actual:
            p = a.partition
            record = self.desired.partition(p)
            if p in active or a.observed.phase is not ActorPhase.RUNNING:
                continue
            stats = a.stats
            if stats is None:
                continue
            if stats.restored_from == "events" and a.info is not None:
                instance = (p, a.info.handle._actor_id.hex(), a.info.restarts)
                if instance not in self._stale_seen:
                    self._stale_seen.add(instance)
                    log.warning("partition %d: stale snapshots; rebuilding a new generation", p)
                    self.rebuilds.request([p])
                    continue
            generation = stats.generation
            if generation != record.generation and a.info:
                # Observed before this tick's rebuild step, which may have just switched it.
                fresh: PartitionStats = ray.get(a.info.handle.stats.remote(), timeout=30)
                generation = fresh.generation
            if generation != record.generation and a.info:
                log.warning(
                    "partition %d: its actor serves generation %s, the desired one is %d; "
                    "replacing it",
                    p,
                    generation,
                    record.generation,
                )
                retire(self.names.partition_actor(p), graceful=False)
                continue  # the next tick places a new actor, which reads the desired state
            if record.paused:
                self._write(msgspec.structs.replace(record, paused=False))
            if stats.paused and a.info is not None:
                log.warning("partition %d was left paused; resuming it", p)
                ray.get(a.info.handle.resume.remote(record.generation), timeout=30)

    def _live(self, tick: _Tick, p: int) -> Any | None:
        a = tick.actual[p]
        if a.observed.phase is ActorPhase.RUNNING and a.info is not None:
            return a.info.handle
        return None

    def _write(self, *records: Any) -> None:
        with self._lock:
            self.writer.write(*records)
            for r in records:
                self.desired.apply(r)

    # -- calls (the actor's method thread) -------------------------------------------------

    def ready(self) -> str:
        return "ready"

    def wait_serving(self, timeout: float = 120.0) -> bool:
        """Whether every partition actor ran within ``timeout`` seconds."""
        return self._serving.wait(timeout)

    def status(self) -> ServiceStatus:
        """The service as of the last tick: one row per partition, nodes, rebuilds."""
        with self._lock:
            tick = self._last
            desired = {p: self.desired.partition(p) for p in range(self.settings.partitions)}
            errors = dict(self.errors)
            ticks = self.ticks
        rebuilds = self.rebuilds.progress()
        rows = []
        for p in range(self.settings.partitions):
            actual = tick.actual[p] if tick is not None else None
            rows.append(
                _row(
                    p,
                    desired[p],
                    actual=actual,
                    end=tick.ends.get(p) if tick else None,
                    rebuild=rebuilds.get(p),
                    now=tick.at if tick else time.time(),
                )
            )
        return ServiceStatus(
            app_id=self.settings.app_id,
            partitions=self.settings.partitions,
            bootstrap_servers=self.settings.bootstrap_servers,
            nodes=tick.nodes if tick else [],
            ticks=ticks,
            observed_at=tick.at if tick else None,
            errors=errors,
            rows=rows,
            rebuilds=rebuilds,
        )

    def rebuild(
        self, partitions: list[int] | None = None, aggregate: AnyAggregate | None = None
    ) -> list[int]:
        """Start an online rebuild of ``partitions`` (all by default); returns those started
        (a partition already being rebuilt is left alone). ``aggregate`` replaces the code's
        aggregate for this rebuild and for the partition after its switch (tests only)."""
        wanted = list(range(self.settings.partitions)) if partitions is None else partitions
        bad = [p for p in wanted if not 0 <= p < self.settings.partitions]
        if bad:
            raise ValueError(f"no such partitions: {bad} (0..{self.settings.partitions - 1})")
        return self.rebuilds.request(wanted, aggregate)

    def rebuild_progress(self) -> dict[int, RebuildProgress]:
        return self.rebuilds.progress()

    def desired_state(self) -> DesiredState:
        """A copy of the desired state (what the control topic holds)."""
        with self._lock:
            d = self.desired
            return DesiredState(d.service, dict(d.partitions), dict(d.rebuilds))

    def lags(self) -> dict[int, int]:
        """Per partition, the commands not yet committed, as of the last tick (partitions
        whose actor did not report are left out)."""
        with self._lock:
            tick = self._last
        if tick is None:
            return {}
        return {
            a.partition: max(0, tick.ends[a.partition] - a.stats.committed_offset)
            for a in tick.actual
            if a.stats is not None and tick.ends.get(a.partition) is not None
        }

    def shutdown(self) -> None:
        """Record the service as stopped, stop the loop, the shadows and every actor."""
        self._write(ServiceRecord(self.settings.partitions, False, time.time()))
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(60)
        self.rebuilds.stop_all()
        for p in range(self.settings.partitions):
            retire(self.names.partition_actor(p), graceful=True)
        self._watermarks.close()
        tracing.flush()
        log.info("coordinator of %s: stopped", self.settings.app_id)


def _row(
    p: int,
    desired: PartitionRecord,
    *,
    actual: PartitionActual | None,
    end: int | None,
    rebuild: RebuildProgress | None,
    now: float,
) -> StatusRow:
    stats = actual.stats if actual is not None else None
    phase = actual.observed.phase if actual is not None else ActorPhase.MISSING
    rebuilding = rebuild is not None and rebuild.phase.active
    if phase is ActorPhase.RUNNING:
        if (stats is not None and stats.paused) or desired.paused:
            state = "paused"
        elif rebuilding:
            state = "rebuilding"
        else:
            state = "running"
    elif phase is ActorPhase.STARTING:
        state = "restoring"
    elif phase is ActorPhase.BROKEN:
        state = str(stats.status) if stats is not None else "broken"
    else:
        state = str(phase)
    committed = stats.committed_offset if stats is not None else None
    last_commit = stats.last_commit_at if stats is not None else 0.0
    info = actual.info if actual is not None else None
    return StatusRow(
        partition=p,
        node=(info.node_id if info is not None else "") or desired.node_id or "",
        state=state,
        generation=stats.generation if stats is not None else desired.generation,
        aggregates=stats.aggregates if stats is not None else None,
        committed_offset=committed,
        lag=None if committed is None or end is None else max(0, end - committed),
        restarts=(info.restarts if info is not None else 0) + max(0, desired.starts - 1),
        last_commit_age=now - last_commit if last_commit else None,
        error=stats.error if stats is not None else None,
        rebuild=rebuild,
    )


# -- deployment (the driver side) ------------------------------------------------------------


def find_coordinator(app_id: str) -> Any | None:
    """The application's coordinator actor, or None when it is not deployed."""
    return lookup_actor(Names(app_id).coordinator_actor, NAMESPACE)


def deploy_coordinator(
    settings: Settings,
    aggregate: AnyAggregate,
    *,
    tick_seconds: float = 0.5,
    wait: bool = True,
    timeout: float = 180.0,
) -> Any:
    """Start the application's coordinator (or find the running one) on this node, and
    optionally wait until every partition actor runs. Raises TimeoutError."""
    remote: Any = ray.remote(Coordinator)
    handle = remote.options(
        name=Names.of(settings).coordinator_actor,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(current_node_id(), soft=True),
    ).remote(settings, aggregate, tick_seconds=tick_seconds)
    if wait and not ray.get(handle.wait_serving.remote(timeout), timeout=timeout + 30):
        errors = ray.get(handle.status.remote(), timeout=30).errors
        why = "".join(f"; {step}: {error}" for step, error in sorted(errors.items()))
        raise TimeoutError(
            f"{settings.app_id}: partitions not all running after {timeout:.0f}s{why}"
        )
    deploy_history(settings, aggregate)
    return handle


def stop_service(app_id: str, timeout: float = 120.0) -> bool:
    """Stop the application's coordinator and, through it, its actors. False: none ran."""
    stop_history(app_id)
    handle = find_coordinator(app_id)
    if handle is None:
        return False
    try:
        ray.get(handle.shutdown.remote(), timeout=timeout)
    finally:
        ray.kill(handle, no_restart=True)
    return True
