"""The coordinator: one named, detached Ray actor per application, ``{app}-coordinator``.

A reconcile loop in the manner of Ray Serve's controller. Every tick, in named steps, each
logged-and-skipped on error so that the loop goes on:

1. ``observe``: alive Ray nodes; each partition actor's Ray state, node, restarts and stats;
   the commands topic's end offsets (for lag);
2. ``place``: ``topology.placement.plan`` decides,
   ``actors.supervisor`` does: start missing actors, replace broken or stranded ones,
   move one actor at a time to even the load; then ``standbys``: the partitions' standbys
   (``actors.members``);
3. ``rebuild``: advance shadow rebuilds and switch partitions over (``RebuildDriver``);
   then ``repartition``: grow the application and move its slots (``RepartitionDriver``);
   a rebuild and a repartition never run at once;
4. ``resume``: a partition whose actor folded its events (snapshots of another state schema)
   is rebuilt; an actor serving another generation than the desired one is replaced; a
   partition left paused by an interrupted switch is resumed on the desired generation;
5. ``routing``: members that report an older routing table than the published one are
   given it (``Member.set_routing``).

Errors of a step are logged and the loop goes on, except for the control writer: when it is
fenced (another coordinator took over) the loop stops, and when its writes keep failing
(``MAX_WRITE_FAILURES`` in a row, each on a freshly created producer) the coordinator ends
its process so that Ray restarts it, rather than supervise on without recording anything.

The desired state (generations, paused flags, placements, rebuilds) lives in the compacted
control topic, written before it is acted on, so a restarted coordinator or a new Ray cluster
picks it up where it was. ``Coordinator`` is a plain class; ``actors.deployment`` runs it as
the detached actor (restarted by Ray without limit: its constructor reads the desired state).

The application's partition count is ``Settings.partitions`` for a new application, and the
recorded one (``ServiceRecord.partitions``) once its slots are assigned: a repartition grows
the topics (``actors.growth``), then the coordinator adopts the count (``adopt_partitions``)
and its next ticks place the new partitions' members, which restore nothing and run. A
shrink grows and adopts nothing (topics never shrink): its moves empty the partitions at or
above its target, which stay placed and running, **drained** (they only forward). Slots
and the routing table's version 0 are assigned by ``start_slots``, the repartition's first
step; ``publish_routing`` records a newer table and pushes it to the members.

Beside the loop, a detector thread (``actors.liveness``) holds a connection to each writer's
liveness socket; when one ends, ``actors.takeover`` hands the partition to its best standby at
once, without waiting for a tick. The writer of partition p is the member its record names
(``PartitionRecord.writer``); every other member is a standby.

The observe and resume steps never wait on one actor: their calls (stats, resume) go to every
actor at once and are awaited together for at most ``ANSWER_SECONDS``; what did not answer
is observed again next tick. (A switch, in the rebuild step, waits on its actor in turn.)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import ray
from confluent_kafka import Consumer, TopicPartition

from actors import tracing
from actors.admin import ensure_specs, ensure_topics
from actors.control_store import ControlWriter, read_desired
from actors.growth import short_of
from actors.history import start_history
from actors.kafka import consumer_config
from actors.liveness import Detector
from actors.logs import timestamped
from actors.members import members_of, place_standbys, push_routing
from actors.messages import (
    Members,
    RebuildProgress,
    RepartitionProgress,
    RestoredFrom,
    ServiceStatus,
)
from actors.metrics import observe_lag
from actors.ray_state import alive_nodes
from actors.rebuild_driver import RebuildDriver
from actors.repartition_driver import RepartitionDriver
from actors.repartition_world import CoordinatorWorld
from actors.status import service_status
from actors.supervisor import (
    ANSWER_SECONDS,
    Observation,
    answers,
    observe_members,
    retire,
    start_partition,
)
from actors.takeover import take_over
from actors.watermarks import watermarks
from topology.control import (
    DesiredState,
    PartitionRecord,
    RepartitionPhase,
    RepartitionRecord,
    RoutingRecord,
    ServiceRecord,
    adoptable,
    application_partitions,
)
from topology.names import Names
from topology.placement import ActorPhase, Move, Observed, Replace, Start, plan
from topology.protocol import AnyAggregate
from topology.routing import RoutingTable
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["MAX_WRITE_FAILURES", "ControlPlaneError", "Coordinator"]

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


def _with_partitions(settings: Settings, service: ServiceRecord | None) -> Settings:
    """``settings`` with the application's count (``application_partitions``)."""
    partitions = application_partitions(service, settings.partitions)
    return dataclasses.replace(settings, partitions=partitions)


def _end_process(error: ControlPlaneError) -> None:
    """Inside a Ray actor, end the process so that Ray restarts the coordinator (its
    constructor fences and re-reads the desired state); a plain object just stops."""
    if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        log.critical("coordinator: %s; ending the process for Ray to restart it", error)
        logging.shutdown()
        os._exit(70)


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
        timestamped()
        configured = settings.partitions
        ensure_specs(settings, [TopicLayout.of(settings).control_spec()])
        settings = _with_partitions(settings, read_desired(settings).service)  # before fencing
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
        self._last: Observation | None = None
        self._stale_seen: set[tuple[int, int, int]] = set()  # (partition, starts, restarts)
        self._aggregates: dict[int, int] = {}  # last reported per partition: sizes memory=
        self._unindexed: set[int] = set()  # adopted partitions whose history index waits
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
        if _with_partitions(settings, self.desired.service) != settings:
            raise ValueError(f"{settings.app_id}: its partition count changed while starting")
        if settings.partitions != configured:
            log.warning(
                "%s: %d partitions as recorded (its slots are assigned), not the %d configured",
                settings.app_id,
                settings.partitions,
                configured,
            )
            start_history(settings, aggregate)  # the deployment starts the configured ones
        generations = {r.generation for r in self.desired.partitions.values() if r.generation}
        if generations:
            ensure_specs(settings, [self.layout.snapshot_spec(g) for g in generations])
        self._write(self._service(serving=True))
        self.rebuilds = RebuildDriver(
            settings, self.desired, self.writer, self._lock, aggregate=aggregate
        )
        self.repartitions = RepartitionDriver(settings, self.desired, self.writer, self._lock)
        self._watermarks = Consumer(
            consumer_config(settings, group_id=self.names.group("coordinator"))
        )
        self.detector: Detector | None = None  # with the loop (``start``)
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
        """Start the reconcile loop and the detector of writers' deaths."""
        if self.detector is None:
            self.detector = Detector(self._writer_died, self.settings.writer_suspect_ms / 1000)
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
            self._step("standbys", lambda: self._place_standbys(tick))
            self._step("rebuild", lambda: self.rebuilds.step(lambda p: self._live(tick, p)))
            self._step("repartition", lambda: self.repartitions.step(CoordinatorWorld(self, tick)))
            self._step("resume", lambda: self._resume(tick))
            self._step("routing", lambda: self._routing(tick))
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

    def _observe(self) -> Observation:
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
            partitions = range(self.settings.partitions)  # one count for the whole tick
            desired = {p: self.desired.partition(p) for p in partitions}
        # Members that may exist: the writer, the standbys wanted now, and every standby a
        # record says was started (a standby outlives a change of count until retired). On
        # one node with `auto`, that is the writer alone: no lookup of absent actors a tick.
        wanted = range(1, self.settings.standbys_for(len(nodes)) + 1)
        found = observe_members(
            self.settings.app_id,
            [(p, m) for p in partitions for m in {0, *wanted, *desired[p].nodes}],
        )
        actual = [found[(p, desired[p].writer)] for p in partitions]
        for a in actual:
            if a.stats is not None:
                self._aggregates[a.partition] = a.stats.aggregates
        topic = self.layout.name(TopicKind.COMMANDS)
        ends = {}
        for p in partitions:
            ends[p] = watermarks(self._watermarks, TopicPartition(topic, p), 5)[1]
        standbys = {(p, m): a for (p, m), a in found.items() if m != desired[p].writer}
        tick = Observation(nodes, actual, ends, time.time(), desired, standbys)
        with self._lock:
            self._last = tick
        self._detector_call(
            lambda d: d.watch(
                {
                    a.partition: (a.member, a.stats.liveness)
                    for a in actual
                    if a.stats is not None
                    and a.stats.liveness
                    and a.observed.phase is ActorPhase.RUNNING
                }
            )
        )
        if all(a.observed.phase is ActorPhase.RUNNING for a in actual):
            self._serving.set()
        return tick

    def _place(self, tick: Observation) -> None:
        with self._lock:
            placed = {p: r.node_id for p, r in self.desired.partitions.items()}
            frozen = self.rebuilds.active() | {
                p for p, r in self.desired.partitions.items() if r.paused
            }
        observed = {a.partition: a.observed for a in tick.actual}
        self._index_history(observed)
        growing = self.repartitions.progress()
        paced: set[int] = set()
        if growing is not None and growing.phase is RepartitionPhase.GROWING:
            paced = set(range(growing.from_partitions, growing.to_partitions))
        actions = plan(len(tick.actual), observed, tick.nodes, placed, frozen=frozen, paced=paced)
        for action in actions:
            writer = self.desired.partition(action.partition).writer
            name = self.names.member_actor(action.partition, writer)
            self._unwatch(action.partition)  # this step ends it
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
            start_partition(
                self.settings, p, node, self.aggregate, self._aggregates.get(p, 0), member=writer
            )

    def _index_history(self, observed: Mapping[int, Observed]) -> None:
        """Start the history index of each adopted partition whose writer runs: one new
        process at a time beside the paced writers, not all of them at the adoption."""
        with self._lock:
            running = sorted(
                p
                for p in self._unindexed
                if p in observed and observed[p].phase is ActorPhase.RUNNING
            )
            self._unindexed.difference_update(running)
        if running:
            start_history(self.settings, self.aggregate, running)

    def _place_standbys(self, tick: Observation) -> None:
        def desired(p: int) -> PartitionRecord:
            with self._lock:
                return self.desired.partition(p)

        place_standbys(
            self.settings,
            tick,
            desired,
            self._write,
            aggregate=self.aggregate,
            aggregates=dict(self._aggregates),
        )

    def _resume(self, tick: Observation) -> None:
        """Rebuild a partition whose actor had to fold its events because its snapshots were
        of another state schema; replace an actor serving another generation than the
        desired one; resume a partition left paused by an interrupted switch. A partition
        whose desired record changed since the observation (this tick's place or rebuild
        step moved or switched it) waits for the next tick's."""
        active = self.rebuilds.active()
        resuming: dict[int, Any] = {}
        for a in tick.actual:
            p, stats, info = a.partition, a.stats, a.info
            record = self.desired.partition(p)
            if p in active or a.observed.phase is not ActorPhase.RUNNING:
                continue
            if stats is None or info is None or record != tick.desired[p]:
                continue
            if stats.restored_from is RestoredFrom.EVENTS and not self.repartitions.active:
                instance = (p, record.starts, info.restarts)  # this actor, since its last start
                if instance not in self._stale_seen:
                    self._stale_seen.add(instance)
                    log.warning("partition %d: stale snapshots; rebuilding a new generation", p)
                    self.rebuilds.request([p])
                    continue
            if stats.generation != record.generation:
                log.warning(
                    "partition %d: its actor serves generation %d, the desired one is %d; "
                    "replacing it",
                    p,
                    stats.generation,
                    record.generation,
                )
                self._unwatch(p)
                retire(self.names.member_actor(p, record.writer), graceful=False)
                continue  # the next tick places a new actor, which reads the desired state
            if record.paused:
                self._write(msgspec.structs.replace(record, paused=False))
            if stats.paused:
                log.warning("partition %d was left paused; resuming it", p)
                resuming[p] = info.handle.resume.remote(record.generation)
        _, failed = answers(resuming, ANSWER_SECONDS)
        if failed:  # the step records it; the next tick observes again
            raise RuntimeError("; ".join(f"partition {p}: {why}" for p, why in failed.items()))

    def _detector_call(self, fn: Callable[[Detector], None]) -> None:
        """``fn(detector)`` when the detector runs (a coordinator ticked by hand has none)."""
        if self.detector is not None:
            fn(self.detector)

    def _unwatch(self, partition: int) -> None:
        if self.detector is not None:
            self.detector.unwatch(partition)

    def _writer_died(self, partition: int, member: int) -> None:
        """The detector read the end of member ``member``'s liveness connection: if it is
        still the recorded writer, a standby takes over (``actors.takeover``)."""
        with self._lock:
            tick, record = self._last, self.desired.partition(partition)
        if tick is None:
            return
        take_over(self.settings, tick, record, member, self._write)

    def _live(self, tick: Observation, p: int) -> Any | None:
        if p >= len(tick.actual):  # added since the tick
            return None
        a = tick.actual[p]
        if a.observed.phase is ActorPhase.RUNNING and a.info is not None:
            return a.info.handle
        return None

    def _service(self, *, serving: bool) -> ServiceRecord:
        """The service record to write: serving or not, its slots kept once assigned."""
        with self._lock:
            service = self.desired.service
        slots = 0 if service is None else service.slots
        return ServiceRecord(self.settings.partitions, serving, time.time(), slots)

    def _routing(self, tick: Observation) -> None:
        """Give the published table to the members that report an older one (started before
        it was published and after it was pushed, or missed the push)."""
        with self._lock:
            routing = self.desired.routing
        if routing is not None and routing.table.version:
            push_routing(tick, routing.table, behind=True)

    def _tick(self) -> Observation | None:
        with self._lock:
            return self._last

    def _write(self, *records: Any) -> None:
        with self._lock:
            self.writer.write(*records)
            for r in records:
                self.desired.apply(r)

    # -- calls (the actor's method thread) -------------------------------------------------

    def ready(self) -> str:
        return "ready"

    def service_settings(self) -> Settings:
        """The service's settings, its Kafka principal's secrets included: for a Ray task that
        must act as the service (``actors.deployment.run_as_service``)."""
        return self.settings

    def wait_serving(self, timeout: float = 120.0) -> bool:
        """Whether every partition actor ran within ``timeout`` seconds."""
        return self._serving.wait(timeout)

    def status(self) -> ServiceStatus:
        """The service as of the last tick: one row per partition, nodes, rebuilds."""
        with self._lock:
            last, errors, ticks = self._last, dict(self.errors), self.ticks
            desired = {p: self.desired.partition(p) for p in range(self.settings.partitions)}
            routing = self.desired.routing
        return service_status(
            self.settings,
            last,
            desired,
            errors=errors,
            ticks=ticks,
            rebuilds=self.rebuilds.progress(),
            routing=None if routing is None else routing.table,
            repartition=self.repartitions.progress(),
        )

    def members(self) -> Members:
        """Per partition, its writer member and the standbys that followed it at the last
        tick (readers send view reads there, the writer being their fallback)."""
        with self._lock:
            last = self._last
            writers = {p: self.desired.partition(p).writer for p in range(self.settings.partitions)}
        return members_of(last, self.settings.partitions, writers)

    def writer_of(self, partition: int) -> int:
        """The member that writes ``partition``, as recorded."""
        with self._lock:
            return self.desired.partition(partition).writer

    def start_slots(self) -> RoutingTable:
        """Assign the application's slots, S = partitions × ``slots_per_partition``, and
        record the routing table's version 0 (``RoutingTable.initial``: every key stays on
        the partition Kafka's layout gives it), in one control transaction, then push it to
        the members; returns the recorded table. Idempotent: once assigned, the recorded
        table is returned as it is. The first step of a repartition."""
        with self._lock:
            service, routing = self.desired.service, self.desired.routing
            if service is not None and service.slots and routing is not None:
                return routing.table
            slots = service.slots if service is not None and service.slots else None
            table = RoutingTable.initial(self.settings.partitions, slots or self.settings.slots)
            assigned = msgspec.structs.replace(self._service(serving=True), slots=table.slots)
            self._write(assigned, RoutingRecord(table, time.time()))
        log.warning("%s: %d slots assigned, routing version 0", self.settings.app_id, table.slots)
        push_routing(self._tick(), table)
        return table

    def adopt_partitions(self, partitions: int, slots: int | None = None) -> int:
        """Take ``partitions`` as the application's count (its slots being ``slots``; None: the
        recorded ones): record it, then place the new partitions' members and history
        indexes (next ticks), which restore nothing and run; returns the count.
        Invariant: the count is recorded only once every per-partition topic has it
        (``actors.growth.grow_topics`` first), and it only grows. Idempotent; raises
        ValueError otherwise (``topology.control.adoptable``) or when a topic was not
        grown."""
        with self._lock:
            service = self.desired.service
            recorded = 0 if service is None else service.slots
            if not adoptable(service, partitions, recorded if slots is None else slots):
                return partitions
        settings = dataclasses.replace(self.settings, partitions=partitions)
        layout = TopicLayout.of(settings)
        left = short_of(settings)
        if left:
            raise ValueError(f"grow the topics first: {sorted(left)} are short of {partitions}")
        with self._lock:
            before = self.settings.partitions
            self.settings, self.layout = settings, layout
            self.rebuilds.settings, self.rebuilds.layout = settings, layout
            self._write(self._service(serving=True))
        log.warning("%s: %d partitions, was %d", settings.app_id, partitions, before)
        with self._lock:
            self._unindexed.update(range(before, partitions))  # once their writers run
        return partitions

    def publish_routing(self, table: RoutingTable) -> RoutingTable:
        """Record ``table`` merged into the published one (by ``moved_at``) and push the
        result to the members; returns it. Raises ValueError before slots are assigned or
        for a table of other slots. The caller keeps the design's rule: a table names q for
        a slot only after q's install of it committed."""
        with self._lock:
            routing = self.desired.routing
            if routing is None:
                raise ValueError("no routing table yet: assign the slots first (start_slots)")
            merged = routing.table.merge(table)
            if merged != routing.table:
                self._write(RoutingRecord(merged, time.time()))
        push_routing(self._tick(), merged)
        return merged

    def rebuild(
        self, partitions: list[int] | None = None, aggregate: AnyAggregate | None = None
    ) -> list[int]:
        """Start an online rebuild of ``partitions`` (all by default); returns those started
        (a partition already being rebuilt is left alone). ``aggregate`` replaces the code's
        aggregate for this rebuild and for the partition after its switch (tests only).
        Raises ValueError for a partition that does not exist and while a repartition runs."""
        wanted = list(range(self.settings.partitions)) if partitions is None else partitions
        bad = [p for p in wanted if not 0 <= p < self.settings.partitions]
        if bad:
            raise ValueError(f"no such partitions: {bad} (0..{self.settings.partitions - 1})")
        with self._lock:
            if self.repartitions.active:
                raise ValueError("a repartition is under way: rebuild once it is done")
            return self.rebuilds.request(wanted, aggregate)

    def repartition(self, partitions: int, parallel: int = 2) -> RepartitionRecord:
        """Start a repartition to ``partitions`` partitions, moving slots from up to
        ``parallel`` sources at a time, or return the one under way to that count. Raises
        ``RepartitionRefusedError`` (a ValueError) when it may not start now."""
        with self._lock:
            return self.repartitions.request(
                partitions, parallel, rebuilding=self.rebuilds.active()
            )

    def repartition_progress(self) -> RepartitionProgress:
        with self._lock:
            error = self.errors.get("repartition")
        return RepartitionProgress(record=self.repartitions.progress(), error=error)

    def rebuild_progress(self) -> dict[int, RebuildProgress]:
        return self.rebuilds.progress()

    def desired_state(self) -> DesiredState:
        """A copy of the desired state (what the control topic holds)."""
        with self._lock:
            d = self.desired
            return DesiredState(
                d.service, dict(d.partitions), dict(d.rebuilds), d.routing, d.repartition
            )

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
        """Record the service as stopped, stop the loop, the shadows and every member."""
        self._write(self._service(serving=False))
        self._stop.set()
        self._detector_call(Detector.stop)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(60)
        self.rebuilds.stop_all()
        for p in range(self.settings.partitions):
            for m in range(self.settings.max_standbys + 1):
                retire(self.names.member_actor(p, m), graceful=True)
        self._watermarks.close()
        tracing.flush()
        log.info("coordinator of %s: stopped", self.settings.app_id)
