"""A local Apache Kafka cluster: several nodes on one machine, each broker + controller.

The nodes are ``eventledger.broker.Broker``s (the same jars, properties, readiness and stop)
that share one controller quorum (every node a voter) and one cluster id. Topics get as many
replicas as there are nodes by default (``default.replication.factor``), and the internal
ones (group offsets, transaction state) as many, with ``min.insync.replicas`` 2 of 3: one
node may be down while transactions go on. A follower more than ``replica_lag_ms`` behind
leaves the ISR (a few seconds here, so that a stopped node's shrink is quick to see).

Starting is idempotent: live nodes are reused, the others started (formatted, the first
time, for the cluster id a node already has, else a new one). Stopping stops every node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from eventledger.broker import SHARED_JVM, Broker, BrokerHome, new_cluster_id
from eventledger.kafka_jars import BrokerError, default_cache_dir

__all__ = ["BrokerCluster", "ClusterHome", "Replicas", "describe_partitions"]

log = logging.getLogger(__name__)

_LOCAL_PORT = 9192  # the single broker's 9092 and 9093 stay free
_READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class ClusterHome:
    """Where the cluster's nodes live (``path/node-{id}``) and the ports each listens on:
    node ``i + 1`` has client port ``ports[i]`` and controller port ``controller_ports[i]``."""

    path: Path = field(default_factory=lambda: default_cache_dir() / "cluster")
    ports: tuple[int, ...] = (_LOCAL_PORT, _LOCAL_PORT + 1, _LOCAL_PORT + 2)
    controller_ports: tuple[int, ...] = (_LOCAL_PORT + 3, _LOCAL_PORT + 4, _LOCAL_PORT + 5)
    heap: str = "512m"
    jvm_options: tuple[str, ...] = SHARED_JVM
    replica_lag_ms: int = 4000

    def __post_init__(self) -> None:
        if not self.ports or len(self.ports) != len(self.controller_ports):
            raise ValueError("a cluster needs one client and one controller port per node")
        every = (*self.ports, *self.controller_ports)
        if len(set(every)) != len(every):
            raise ValueError(f"the cluster's ports must differ, got {every}")

    @classmethod
    def of(cls, path: Path, ports: Sequence[int]) -> ClusterHome:
        """One node per two of ``ports``: the first half its client ports, the second its
        controller ports."""
        size, odd = divmod(len(ports), 2)
        if size < 1 or odd:
            raise ValueError(f"a cluster needs two ports per node, got {len(ports)}")
        return cls(path=path, ports=tuple(ports[:size]), controller_ports=tuple(ports[size:]))

    @property
    def size(self) -> int:
        return len(self.ports)

    @property
    def quorum(self) -> tuple[tuple[int, int], ...]:
        """The controller quorum's voters: (node id, controller port), node ids from 1."""
        return tuple((i + 1, port) for i, port in enumerate(self.controller_ports))

    @property
    def bootstrap(self) -> str:
        """Every node's client address, comma-separated."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def nodes(self) -> list[BrokerHome]:
        """Each node's home: a voter of the one quorum, replicating topics ``size`` times."""
        return [
            BrokerHome(
                path=self.path / f"node-{node_id}",
                port=self.ports[node_id - 1],
                controller_port=controller_port,
                heap=self.heap,
                jvm_options=self.jvm_options,
                node_id=node_id,
                quorum=self.quorum,
                replicas=self.size,
                replica_lag_ms=self.replica_lag_ms,
            )
            for node_id, controller_port in self.quorum
        ]


@dataclass(frozen=True)
class Replicas:
    """One partition's leader (-1: none) and in-sync replicas, by node id."""

    leader: int
    isr: tuple[int, ...]


def describe_partitions(
    bootstrap: str, topics: list[str], timeout: float = 10.0
) -> dict[tuple[str, int], Replicas]:
    """The leader and ISR of every partition of ``topics``, as the cluster describes them
    (within ``timeout`` seconds: a request to a stopped node would wait a minute)."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    from actors.kafka import bootstrap_config

    admin = AdminClient({**bootstrap_config(bootstrap), "log_level": 0})
    found: dict[tuple[str, int], Replicas] = {}
    futures = admin.describe_topics(TopicCollection(topics), request_timeout=timeout)
    for name, future in futures.items():
        for p in future.result(timeout=timeout).partitions:
            leader = -1 if p.leader is None else p.leader.id
            found[(name, p.id)] = Replicas(leader, tuple(sorted(n.id for n in p.isr)))
    return found


class BrokerCluster:
    """Start, stop and inspect the nodes of one ``ClusterHome``."""

    def __init__(self, home: ClusterHome | None = None, cache_dir: Path | None = None) -> None:
        self.home = home or ClusterHome()
        self.nodes = {h.node_id: Broker(h, cache_dir) for h in self.home.nodes()}

    @property
    def bootstrap(self) -> str:
        return self.home.bootstrap

    def pids(self) -> dict[int, int | None]:
        """Each node's live pid (None: not running), by node id."""
        return {node_id: broker.pid() for node_id, broker in self.nodes.items()}

    def start(self) -> str:
        """Start every node that is not running (all at once: a node waits for the quorum),
        wait until every node is a live broker of the cluster, and return the bootstrap."""
        down = [b for b in self.nodes.values() if b.pid() is None]
        if down:
            formatted = (b.cluster_id() for b in self.nodes.values())
            cluster_id = next((c for c in formatted if c), None) or new_cluster_id()
            launched = []
            try:
                for broker in down:
                    launched.append((broker, broker.launch(cluster_id)))
                for broker, proc in launched:
                    broker.await_ready(proc)
            except BrokerError:
                self.stop()
                raise
        self._await_members()
        log.info("cluster of %d up at %s", self.home.size, self.bootstrap)
        return self.bootstrap

    def _await_members(self) -> None:
        """Until the cluster describes every node. A single node is ready once it answers
        (``Broker.await_ready``) and is not described: a torture run's process aborted once
        in librdkafka 2.16 (``rd_kafka_admin_response_parse: Assertion `rko_result'
        failed``) a minute after its broker fault's restart, and this describe was the only
        admin request that process made with one broker."""
        if self.home.size == 1:
            return
        from confluent_kafka.admin import AdminClient

        from actors.kafka import bootstrap_config

        admin = AdminClient({**bootstrap_config(self.bootstrap), "log_level": 0})
        deadline = time.monotonic() + _READY_TIMEOUT_S
        members = 0
        while time.monotonic() < deadline:
            try:
                members = len(admin.describe_cluster().result(timeout=5).nodes)
            except Exception as e:  # a node still joining
                log.debug("cluster not described yet: %s", e)
            if members == self.home.size:
                return
            time.sleep(0.25)
        self.stop()
        raise BrokerError(
            f"only {members} of {self.home.size} brokers joined the cluster; see {self.home.path}"
        )

    def stop(self) -> bool:
        """Stop every node at once (one by one, the last would wait for a lost quorum).
        True if any was running."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            return any(list(pool.map(lambda b: b.stop(), self.nodes.values())))
