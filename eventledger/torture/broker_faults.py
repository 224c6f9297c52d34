"""The faults on Kafka's nodes, for the nemesis: every node killed, a leader killed, a node
stopped until the ISR shrinks.

- ``broker``: kill -9 of every node, down for ``broker_down_seconds``, then all started again
  on the same ports and data (one node: the single broker's fault);
- ``leader``: kill -9 of the node that leads a partition of the application's commands or
  events topic (as the cluster describes it), down for ``leader_down_seconds``, then started
  again; the others elect new leaders meanwhile;
- ``isr``: SIGSTOP of one node until every partition of the commands and events topics has
  dropped it from its ISR (read from the other nodes; at most ``isr_timeout``), then SIGCONT.

With several nodes, a fault lasts until every node is back in the ISR of those partitions.

A fault hits the data partitions one of whose topics the node led when it struck (a replies
partition counts for the data partition it belongs to). ``heal`` continues a stopped node and
starts every node that is down. Signals go to processes of this machine only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from eventledger.broker_cluster import BrokerCluster, Replicas, describe_partitions
from eventledger.torture.faults import CLUSTER_NODES, FaultRecord, NemesisPlan
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["BrokerFaults", "led_by"]

log = logging.getLogger(__name__)

_WATCHED = (TopicKind.COMMANDS, TopicKind.EVENTS)


@dataclass
class BrokerFaults:
    """Injects the faults on the nodes of ``brokers`` into the application of ``settings``."""

    brokers: BrokerCluster
    settings: Settings
    plan: NemesisPlan
    clock: Callable[[], float]
    rng: random.Random
    _stopped: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._layout = TopicLayout.of(self.settings)

    # -- the faults -----------------------------------------------------------------------

    def kill_all(self, record: FaultRecord) -> None:
        live = {n: pid for n, pid in self.brokers.pids().items() if pid is not None}
        pids = list(live.values())
        if not pids:
            raise RuntimeError("no broker process to kill")
        down = self.plan.broker_down_seconds
        record.target = f"{_nodes(len(pids))} (pid {', '.join(map(str, pids))}) down {down:.1f}s"
        record.partitions = tuple(range(self.settings.partitions))
        record.started = self.clock()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self._await_gone(list(live))
        time.sleep(down)
        self.restart()
        self._await_in_sync(record)

    def kill_leader(self, record: FaultRecord) -> None:
        self._need_cluster()
        topic = self._layout.name(self.rng.choice(_WATCHED))
        partition = self.rng.randrange(self.settings.partitions)
        described = self._describe()
        node = described[(topic, partition)].leader
        pid = self.brokers.nodes[node].pid() if node in self.brokers.nodes else None
        if pid is None:
            raise RuntimeError(f"{topic}[{partition}] has no live leader (node {node})")
        down = self.plan.leader_down_seconds
        record.target = f"node {node} (pid {pid}), leader of {topic}[{partition}], down {down:.1f}s"
        record.partitions = led_by(node, described, self._layout)
        record.started = self.clock()
        os.kill(pid, signal.SIGKILL)
        self._await_gone([node])
        time.sleep(down)
        self.restart()
        self._await_in_sync(record)

    def stall_isr(self, record: FaultRecord) -> None:
        self._need_cluster()
        node = self.rng.choice(sorted(self.brokers.nodes))
        pid = self.brokers.nodes[node].pid()
        if pid is None:
            raise RuntimeError(f"node {node} is not running")
        described = self._describe()
        record.target = f"node {node} (pid {pid})"
        record.partitions = led_by(node, described, self._layout)
        others = ",".join(b.home.bootstrap for n, b in self.brokers.nodes.items() if n != node)
        with self._lock:
            self._stopped.add(pid)
        record.started = self.clock()
        os.kill(pid, signal.SIGSTOP)
        try:
            shrank = self._await_shrink(node, others, record.started)
        finally:
            self._continue(pid)
        if shrank is None:
            record.ok = False
            record.detail = f"the ISR kept node {node} for {self.plan.isr_timeout:.0f}s"
        else:
            record.detail = f"ISR without node {node} after {shrank:.1f}s"
            self._await_in_sync(record)

    # -- healing --------------------------------------------------------------------------

    def heal(self) -> None:
        """Continue a stopped node; start every node that is down."""
        with self._lock:
            stopped = list(self._stopped)
        for pid in stopped:
            self._continue(pid)
        if any(pid is None for pid in self.brokers.pids().values()):
            self.restart()

    def restart(self) -> None:
        """Start every node that is down, on its ports and data; a port still held (the
        killed process's socket) is retried."""
        for attempt in range(10):
            try:
                self.brokers.start()
                return
            except Exception as e:
                log.warning("nemesis: broker restart %d failed: %s", attempt + 1, e)
                time.sleep(1.0)
        self.brokers.start()

    # -- helpers --------------------------------------------------------------------------

    def _need_cluster(self) -> None:
        if len(self.brokers.nodes) < CLUSTER_NODES:
            raise RuntimeError(f"needs a cluster of {CLUSTER_NODES} brokers")

    def _describe(self) -> dict[tuple[str, int], Replicas]:
        """Every data topic's partitions: leader and ISR."""
        return describe_partitions(self.brokers.bootstrap, [s.name for s in self._layout.specs()])

    def _await_shrink(self, node: int, others: str, since: float) -> float | None:
        """Seconds from ``since`` until no watched partition has ``node`` in its ISR (asked of
        the other nodes), or None if it has not happened within ``isr_timeout``."""
        watched = {self._layout.name(kind) for kind in _WATCHED}
        deadline = time.monotonic() + self.plan.isr_timeout
        while time.monotonic() < deadline:
            try:
                described = describe_partitions(others, sorted(watched), timeout=2.0)
                if described and all(node not in r.isr for r in described.values()):
                    return self.clock() - since
            except Exception as e:  # a new controller or leader being elected
                log.debug("nemesis: describing the ISR: %s", e)
            time.sleep(0.25)
        return None

    def _await_in_sync(self, record: FaultRecord) -> None:
        """The fault lasts until every node is back in the ISR of every watched partition
        (bounded by ``recovery_timeout``): a node still catching up would make the next
        node fault leave one replica in sync, below min ISR, and merge the two."""
        if len(self.brokers.nodes) < 2:
            return
        watched = sorted(self._layout.name(kind) for kind in _WATCHED)
        every = tuple(sorted(self.brokers.nodes))
        deadline = time.monotonic() + self.plan.recovery_timeout
        while time.monotonic() < deadline:
            try:
                described = describe_partitions(self.brokers.bootstrap, watched, timeout=2.0)
                if described and all(r.isr == every for r in described.values()):
                    return
            except Exception as e:  # a node still joining
                log.debug("nemesis: describing the ISR: %s", e)
            time.sleep(0.25)
        record.detail = (record.detail + "; not all in sync before the deadline").lstrip("; ")

    def _await_gone(self, nodes: list[int]) -> None:
        """Until the killed nodes' processes are gone (reaped, when they are our children)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            self.brokers.nodes[n].pid() is not None for n in nodes
        ):
            time.sleep(0.05)

    def _continue(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        with self._lock:
            self._stopped.discard(pid)


def led_by(
    node: int, described: Mapping[tuple[str, int], Replicas], layout: TopicLayout
) -> tuple[int, ...]:
    """The data partitions of ``layout`` one of whose topics ``node`` leads in ``described``
    (a replies partition ``p·L + l`` belongs to data partition ``p``)."""
    per_data = {s.name: max(1, s.partitions // layout.partitions) for s in layout.specs()}
    return tuple(
        sorted(
            {
                p // per_data[t]
                for (t, p), r in described.items()
                if r.leader == node and t in per_data
            }
        )
    )


def _nodes(n: int) -> str:
    return "broker" if n == 1 else f"{n} brokers"
