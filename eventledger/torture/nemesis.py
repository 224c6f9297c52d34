"""The nemesis: faults injected into a running service, bounded in count and in time (a
little over 400 lines: one method per fault kind, kept together as the list below).

One fault at a time from a thread, every ``interval`` seconds, the selected kinds in turn
(a seeded shuffle of their order), each kind at most ``max_per_kind`` times:

- ``kill``: SIGKILL of one partition actor's process (Ray restarts it; it fences and restores);
- ``stop``: SIGSTOP of one partition actor for ``stop_seconds`` (longer than the clients'
  per-attempt timeout), then SIGCONT, always;
- ``broker``, ``leader``, ``isr``: on Kafka's nodes (``eventledger.torture.broker_faults``):
  every node killed, a partition's leader killed, a node stopped until the ISR shrinks;
- ``coordinator``: SIGKILL of the coordinator's process (Ray restarts it; it re-reads the
  desired state);
- ``rebuild``: an online rebuild of every partition, left running while the other faults go
  on (its window ends when the coordinator reports it finished);
- ``node``: removal of a Ray worker node without grace, and a new one added
  ``node_down_seconds`` later (needs a ``ray.cluster_utils.Cluster``);
- ``repartition``: the coordinator's online repartition to the next count
  (``eventledger.torture.growth``: 4 → 8, then 8 → 12), left running while the other faults
  go on (its window ends when the coordinator records it done or failed); its turn passes
  while one is under way. Meanwhile ``kill`` and ``stop`` aim at a source or target of a
  move under way.

Ray's cluster nodes are removed and added on the main thread (``serve``).
``heal`` undoes whatever a fault left broken (a stopped process, a broker down, a node
missing), so that the run can be checked. Signals go to processes of this machine only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import ray
from confluent_kafka import Producer

from actors.deployment import find_coordinator
from actors.kafka import producer_config
from actors.messages import RebuildProgress, RepartitionProgress
from actors.ray_state import describe_actor, partition_actor, writer_member
from eventledger.broker_cluster import BrokerCluster
from eventledger.torture.broker_faults import BrokerFaults
from eventledger.torture.faults import Fault, FaultRecord, NemesisPlan
from eventledger.torture.growth import MoveSummary, next_count, summarize
from eventledger.torture.hostile import hostile_records
from topology.control import RebuildPhase, RepartitionPhase
from topology.names import NAMESPACE, Names
from topology.partitioner import partition_for
from topology.resources import DEFAULT_RESOURCE, LOCAL_SLOTS
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["CLUSTER_NODE", "Nemesis"]

log = logging.getLogger(__name__)

CLUSTER_NODE: dict[str, Any] = {
    "num_cpus": 1,
    "object_store_memory": 128 * 1024**2,
    "resources": {DEFAULT_RESOURCE: LOCAL_SLOTS},  # every node may hold partitions
}
"""The arguments of every node the ``node`` fault adds (and of the run's cluster nodes)."""


def _pid(_actor: Any) -> int:
    """Run inside an actor by ``__ray_call__``: the process id of its worker."""
    return os.getpid()


@dataclass
class Nemesis:
    """Injects ``faults`` into the application of ``settings`` until ``stop``."""

    faults: Sequence[Fault]
    settings: Settings
    brokers: BrokerCluster
    clock: Callable[[], float]
    plan: NemesisPlan = field(default_factory=NemesisPlan)
    cluster: Any | None = None
    seed: int = 0
    accounts: Sequence[str] = ()  # the bank's, for the hostile fault
    records: list[FaultRecord] = field(default_factory=list)
    repartitions: dict[int, MoveSummary] = field(default_factory=dict)
    """The latest progress of each repartition the nemesis started, by its number."""

    def __post_init__(self) -> None:
        if Fault.NODE in self.faults and self.cluster is None:
            raise ValueError("the node fault needs a ray.cluster_utils.Cluster")
        self._rng = random.Random(self.seed)
        self._brokers = BrokerFaults(self.brokers, self.settings, self.plan, self.clock, self._rng)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._stopped: set[int] = set()
        self._missing_nodes = 0
        self._main_calls: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self.partitions = self.settings.partitions
        """The application's count as last seen (a repartition past its growth raises it)."""
        self._moving: set[int] = set()  # the sources and targets of moves under way

    # -- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        """No new fault; wait for the one in progress to end (serving its main-thread
        calls meanwhile: call this from the main thread)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.serve(0.1)

    def serve(self, timeout: float) -> None:
        """Run one call the nemesis needs made on the main thread, waiting up to
        ``timeout`` for one. Ray's ``Cluster.add_node`` installs signal handlers, which
        Python allows on the main thread only: the run's main loop calls this."""
        try:
            fn, done = self._main_calls.get(timeout=timeout)
        except queue.Empty:
            return
        try:
            done.set_result(fn())
        except Exception as e:
            done.set_exception(e)

    def _on_main(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is threading.main_thread():
            return fn()
        done: Future[Any] = Future()
        self._main_calls.put((fn, done))
        return done.result(timeout=180)

    def injected(self) -> int:
        with self._lock:
            return len(self.records)

    def each_kind_tried(self) -> bool:
        """Every selected kind has been injected (or tried) at least once, or the nemesis
        has ended (every kind at its ``max_per_kind``)."""
        with self._lock:
            tried = {r.kind for r in self.records}
        return tried >= set(self.faults) or not self._thread.is_alive()

    def _run(self) -> None:
        if not self.faults:
            return
        order = list(self.faults)
        self._rng.shuffle(order)
        turns = {f: 0 for f in order}
        self._stop.wait(self.plan.warmup)
        i = 0
        while not self._stop.is_set():
            self._watch_rebuilds()
            self._watch_repartitions()
            kind = order[i % len(order)]
            i += 1
            if all(n >= self.plan.max_per_kind for n in turns.values()):
                break
            if turns[kind] >= self.plan.max_per_kind:
                continue
            if kind is Fault.REPARTITION:
                if next_count(self.settings.partitions, self._grown_to()) is None:
                    turns[kind] = self.plan.max_per_kind  # every growth done
                    continue
                if self._repartition_open():
                    self._stop.wait(1.0)  # its turn passes while one is under way
                    continue
            turns[kind] += 1
            record = FaultRecord(kind, self.clock())
            with self._lock:
                self.records.append(record)
            try:
                self._inject(record)
            except Exception as e:  # a fault that could not be injected is recorded, not fatal
                record.ok = False
                record.detail = f"{type(e).__name__}: {e}"[:200]
                log.warning("nemesis: %s failed: %s", kind, record.detail)
            if kind not in (Fault.REBUILD, Fault.REPARTITION) or not record.ok:
                record.ended = self.clock()
            log.info("nemesis: %s %s %s", kind, record.target, record.detail)
            self._stop.wait(self.plan.interval)
        self._watch_rebuilds()
        self._watch_repartitions()

    def _inject(self, record: FaultRecord) -> None:
        match record.kind:
            case Fault.KILL:
                self._kill_partition(record)
            case Fault.STOP:
                self._stop_partition(record)
            case Fault.BROKER:
                self._brokers.kill_all(record)
            case Fault.LEADER:
                self._brokers.kill_leader(record)
            case Fault.ISR:
                self._brokers.stall_isr(record)
            case Fault.COORDINATOR:
                self._kill_coordinator(record)
            case Fault.REBUILD:
                self._rebuild(record)
            case Fault.NODE:
                self._replace_node(record)
            case Fault.HOSTILE:
                self._hostile(record)
            case Fault.REPARTITION:
                self._repartition(record)

    # -- the faults -----------------------------------------------------------------------

    def _actor_pid(self, handle: Any) -> int:
        pid: int = ray.get(handle.__ray_call__.remote(_pid), timeout=10)
        return pid

    def _kill_partition(self, record: FaultRecord) -> None:
        p = self._target()
        pid = self._actor_pid(partition_actor(self.settings.app_id, p))
        record.target, record.partitions = f"partition {p} (pid {pid})", (p,)
        record.started = self.clock()
        os.kill(pid, signal.SIGKILL)
        self._wait_back(lambda: partition_actor(self.settings.app_id, p), pid, record)

    def _target(self) -> int:
        """A partition to hit: while a repartition moves, a source or target of a move
        under way; else any."""
        self._watch_repartitions()
        with self._lock:
            moving = sorted(self._moving)
        return self._rng.choice(moving) if moving else self._rng.randrange(self.partitions)

    def _wait_back(self, find: Callable[[], Any], pid: int, record: FaultRecord) -> None:
        """The fault lasts until the actor answers again from a new process (bounded)."""
        deadline = time.monotonic() + self.plan.recovery_timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                handle = find()
                if handle is not None and self._actor_pid(handle) != pid:
                    return
            except Exception as e:  # restarting, or its name not yet registered again
                log.debug("nemesis: waiting for a restart: %s", e)
            time.sleep(0.2)
        record.detail = "not back before the deadline"

    def _stop_partition(self, record: FaultRecord) -> None:
        p = self._target()
        pid = self._actor_pid(partition_actor(self.settings.app_id, p))
        record.target = f"partition {p} (pid {pid}) for {self.plan.stop_seconds:.1f}s"
        record.partitions = (p,)
        with self._lock:
            self._stopped.add(pid)
        record.started = self.clock()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(self.plan.stop_seconds)
        finally:
            self._continue(pid)

    def _continue(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        with self._lock:
            self._stopped.discard(pid)

    def _hostile(self, record: FaultRecord) -> None:
        """A burst of hostile records (`eventledger.torture.hostile`) straight into the
        commands partition of a bank account, amid its valid commands."""
        if not self.accounts:
            raise ValueError("the hostile fault needs the bank's accounts")
        account = self._rng.choice(list(self.accounts))
        partition = partition_for(account.encode(), self.settings.partitions)
        lane = self._rng.randrange(self.settings.reply_lanes)
        records = hostile_records(account, lane, tag=str(len(self.records)))
        producer = Producer({**producer_config(self.settings), "message.max.bytes": 2_000_000})
        topic = TopicLayout.of(self.settings).name(TopicKind.COMMANDS)
        for r in records:
            producer.produce(topic, r.value, account.encode(), partition, headers=r.headers or None)
        left = producer.flush(30)
        record.target = f"{len(records)} records against {account} (partition {partition})"
        if left:
            record.detail = f"{left} not delivered"

    def _kill_coordinator(self, record: FaultRecord) -> None:
        handle = find_coordinator(self.settings.app_id)
        if handle is None:
            raise RuntimeError("no coordinator")
        pid = self._actor_pid(handle)
        record.target = f"coordinator (pid {pid})"
        record.started = self.clock()
        os.kill(pid, signal.SIGKILL)
        self._wait_back(lambda: find_coordinator(self.settings.app_id), pid, record)

    def _rebuild(self, record: FaultRecord) -> None:
        handle = find_coordinator(self.settings.app_id)
        if handle is None:
            raise RuntimeError("no coordinator")
        started: list[int] = ray.get(handle.rebuild.remote(None), timeout=30)
        record.target = f"partitions {started}"
        if not started:
            record.ok = False
            record.detail = "a rebuild was already running"

    def _watch_rebuilds(self) -> None:
        """End the window of a rebuild once the coordinator reports every partition final."""
        with self._lock:
            open_ = [r for r in self.records if r.kind is Fault.REBUILD and r.ended is None]
        if not open_:
            return
        try:
            handle = find_coordinator(self.settings.app_id)
            progress: dict[int, RebuildProgress] = (
                ray.get(handle.rebuild_progress.remote(), timeout=10) if handle else {}
            )
        except Exception as e:  # the coordinator is restarting: ask again next turn
            log.info("nemesis: rebuild progress unavailable: %s", e)
            return
        final = (RebuildPhase.DONE, RebuildPhase.FAILED)
        if progress and all(r.phase in final for r in progress.values()):
            for r in open_:
                r.ended = self.clock()
                r.detail = ", ".join(f"{p}: {v.phase}" for p, v in sorted(progress.items()))

    def _grown_to(self) -> int:
        """The count the last repartition started goes to (the first count: none yet)."""
        with self._lock:
            counts = [s.to_partitions for s in self.repartitions.values()]
        return max([self.settings.partitions, *counts])

    def repartition_line(self) -> str:
        """The latest repartition's progress in a few words ("" when none started)."""
        with self._lock:
            if not self.repartitions:
                return ""
            s = self.repartitions[max(self.repartitions)]
        return f"{s.from_partitions}→{s.to_partitions} {s.phase} {s.published}/{s.moves}"

    def _repartition_open(self) -> bool:
        with self._lock:
            return any(r.kind is Fault.REPARTITION and r.ended is None for r in self.records)

    def _repartition(self, record: FaultRecord) -> None:
        """Start the coordinator's repartition to the next count; it runs on its own."""
        handle = find_coordinator(self.settings.app_id)
        if handle is None:
            raise RuntimeError("no coordinator")
        before = self._grown_to()
        count = next_count(self.settings.partitions, before)
        if count is None:
            raise RuntimeError("every growth is done")
        started = ray.get(handle.repartition.remote(count, 2), timeout=60)
        record.target = f"{before} → {count} (repartition {started.number})"
        record.partitions = tuple(range(before))
        with self._lock:
            self.repartitions[started.number] = summarize(started)

    def _watch_repartitions(self) -> None:
        """Keep each repartition's progress; end its window once it is done or failed."""
        with self._lock:
            open_ = [r for r in self.records if r.kind is Fault.REPARTITION and r.ended is None]
        if not open_:
            return
        try:
            handle = find_coordinator(self.settings.app_id)
            progress: RepartitionProgress | None = (
                ray.get(handle.repartition_progress.remote(), timeout=10) if handle else None
            )
        except Exception as e:  # the coordinator is restarting: ask again next turn
            log.info("nemesis: repartition progress unavailable: %s", e)
            return
        record = None if progress is None else progress.record
        if record is None:
            return
        summary = summarize(record)
        busy = [m for m in record.moves if m.state.busy] if record.phase.active else []
        with self._lock:
            self._moving = {p for m in busy for p in (m.source, m.target)}
            self.repartitions[record.number] = summary
            if record.phase is not RepartitionPhase.GROWING:
                self.partitions = max(self.partitions, record.to_partitions)
        log.info("nemesis: %s", summary)
        if not record.phase.active:
            for r in open_:
                r.ended = self.clock()
                r.detail = str(summary)

    def _replace_node(self, record: FaultRecord) -> None:
        if self.cluster is None:
            raise RuntimeError("the node fault needs a ray.cluster_utils.Cluster")
        workers = list(self.cluster.worker_nodes)
        if not workers:
            raise RuntimeError("no worker node to remove")
        node = self._rng.choice(workers)
        record.target = f"node {node.node_id[:8]} for {self.plan.node_down_seconds:.1f}s"
        names = Names(self.settings.app_id)
        record.partitions = tuple(
            p
            for p in range(self.settings.partitions)
            if (
                info := describe_actor(
                    names.member_actor(p, writer_member(names.app_id, p)), NAMESPACE
                )
            )
            is not None
            and info.node_id == node.node_id
        )
        cluster = self.cluster

        def remove() -> None:
            record.started = self.clock()
            cluster.remove_node(node, allow_graceful=False)

        self._on_main(remove)
        self._missing_nodes += 1
        time.sleep(self.plan.node_down_seconds)
        self._add_nodes()

    def _add_nodes(self) -> None:
        cluster = self.cluster
        while self._missing_nodes > 0 and cluster is not None:
            self._on_main(lambda: cluster.add_node(**CLUSTER_NODE))
            self._missing_nodes -= 1

    # -- after the run --------------------------------------------------------------------

    def heal(self, timeout: float = 120.0) -> None:
        """Continue any stopped process, start the brokers that are down, wait for the
        rebuilds to end (bounded), and close every fault window."""
        with self._lock:
            stopped = list(self._stopped)
        for pid in stopped:
            self._continue(pid)
        self._brokers.heal()
        self._add_nodes()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._watch_rebuilds()
            self._watch_repartitions()
            with self._lock:
                if all(r.ended is not None for r in self.records):
                    return
            time.sleep(0.5)
        with self._lock:
            for r in self.records:
                if r.ended is None:
                    r.ended = self.clock()
                    r.detail = (r.detail + " (still running at the check)").strip()
