"""One torture run, end to end: a broker and a Ray of its own, the service deployed through
its coordinator, the bank workload and the nemesis together for ``seconds`` (longer if a
selected fault kind has not been injected yet: each is, at least once), then heal,
quiesce, read the committed events and the actors' balances, check, and tear down.

The broker (``brokers`` nodes: one, or a cluster of three with replication factor 3 and min
ISR 2) lives in a temporary directory on free ports (so that the nemesis can kill -9 a node
and start it again on the same ports and data); Ray is a local instance, or a
``ray.cluster_utils.Cluster`` (head + one worker) when the ``node`` fault is selected. All
traffic stays on 127.0.0.1. Everything started here is stopped here, anomaly or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from actors.deployment import find_coordinator, stop_service
from actors.messages import RowState, ServiceStatus
from eventledger.assembly import AGGREGATE, deploy_service
from eventledger.broker_cluster import BrokerCluster, ClusterHome
from eventledger.runtime import LOCAL_RAY_SYSTEM_CONFIG, free_port, local_resources
from eventledger.torture.checker import CheckResult, check
from eventledger.torture.faults import Fault, FaultRecord, NemesisPlan, check_brokers
from eventledger.torture.gap import Gap, GapOutcome, answer_gap
from eventledger.torture.growth import MoveSummary
from eventledger.torture.history import History, Op
from eventledger.torture.nemesis import CLUSTER_NODE, Nemesis
from eventledger.torture.reading import actor_balances, forwarded, read_facts
from eventledger.torture.state_reader import StateReader, live_partitions
from eventledger.torture.workload import Bank, RetryPolicy, Workload
from topology.names import NAMESPACE
from topology.partitioner import partition_for
from topology.settings import Settings

__all__ = ["Snapshot", "TortureConfig", "TortureResult", "run_torture"]

log = logging.getLogger(__name__)

# Node failures noticed in ~2 s rather than Ray's default ~15 s (as the tests' cluster).
_FAST_HEALTH_CHECKS = {
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 4,
}


@dataclass(frozen=True)
class TortureConfig:
    seconds: float = 60.0
    faults: tuple[Fault, ...] = (Fault.KILL, Fault.BROKER)
    accounts: int = 40
    clients: int = 48
    seed: int = 1
    partitions: int = 3
    reply_lanes: int = 2
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    plan: NemesisPlan = field(default_factory=NemesisPlan)
    settle_timeout: float = 180.0
    keep: Path | None = None  # keep the broker's data, logs and state here for inspection
    brokers: int = 1

    def __post_init__(self) -> None:
        check_brokers(self.faults, self.brokers)


@dataclass(frozen=True)
class Snapshot:
    """Progress, reported about once a second."""

    phase: str
    elapsed: float
    seconds: float
    ops: int
    answered: int
    faults: int


@dataclass
class TortureResult:
    config: TortureConfig
    app_id: str
    check: CheckResult
    ops: list[Op]
    faults: list[FaultRecord]
    errors: Counter[str]
    shared_ids: int
    duration: float
    notes: list[str] = field(default_factory=list)
    repartitions: list[MoveSummary] = field(default_factory=list)
    owners: dict[str, int] = field(default_factory=dict)
    """Each account's partition as the actors held it at the check."""
    zero_unix_ms: int = 0
    """The wall-clock time (Unix ms) of the run's clock's 0 s, to place an event's
    timestamp (an example's ``t=``) on the run's clock."""
    forwarded: int | None = None
    """Records the partitions forwarded to their slot's owner, since each worker started
    (None: not asked, or no repartition)."""

    @property
    def ok(self) -> bool:
        return self.check.ok and not self.notes

    def gaps(self) -> list[Gap]:
        """Each fault's answer gap (``eventledger.torture.gap``), in the order of ``faults``;
        a fault that could not be injected has none. An account's partition is its first
        one, or after a repartition the one holding it at the check (so a gap measured
        before a move of it is an approximation)."""
        moved = bool(self.repartitions)
        partition_of = functools.cache(
            lambda account: (
                self.owners[account]
                if moved and account in self.owners
                else partition_for(account.encode(), self.config.partitions)
            )
        )
        return [
            answer_gap(self.ops, partition_of, f.partitions, f.started, f.ended)
            if f.ok
            else Gap(GapOutcome.NO_PARTITION)
            for f in self.faults
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "app_id": self.app_id,
            "seconds": self.config.seconds,
            "faults_selected": [f.value for f in self.config.faults],
            "accounts": self.config.accounts,
            "clients": self.config.clients,
            "seed": self.config.seed,
            "brokers": self.config.brokers,
            "duration": round(self.duration, 1),
            "faults": [
                {
                    "kind": r.kind.value,
                    "started": round(r.started, 2),
                    "ended": None if r.ended is None else round(r.ended, 2),
                    "target": r.target,
                    "ok": r.ok,
                    "detail": r.detail,
                    "partitions": list(r.partitions),
                    "gap": None if gap.seconds is None else round(gap.seconds, 3),
                    "gap_outcome": gap.outcome.value,
                }
                for r, gap in zip(self.faults, self.gaps(), strict=True)
            ],
            "client_errors": dict(self.errors),
            "shared_id_pairs": self.shared_ids,
            "notes": self.notes,
            "repartitions": [dataclasses.asdict(r) for r in self.repartitions],
            "forwarded": self.forwarded,
            "zero_unix_ms": self.zero_unix_ms,
            "check": self.check.to_dict(),
        }


@contextlib.contextmanager
def _ray(with_cluster: bool) -> Iterator[Any | None]:
    """A Ray of the run's own: local, or a head + one worker cluster. Yields the cluster."""
    if ray.is_initialized():
        raise RuntimeError("Ray is already initialized in this process: the run needs its own")
    cluster: Any | None = None
    if with_cluster:
        from ray.cluster_utils import Cluster

        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                **CLUSTER_NODE,
                "include_dashboard": False,
                "_system_config": {**LOCAL_RAY_SYSTEM_CONFIG, **_FAST_HEALTH_CHECKS},
            },
        )
        cluster.add_node(**CLUSTER_NODE)
        cluster.wait_for_nodes()
        ray.init(
            address=cluster.address,
            namespace=NAMESPACE,
            log_to_driver=False,
            configure_logging=False,
        )
    else:
        ray.init(
            address="local",
            num_cpus=2,
            namespace=NAMESPACE,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            resources=local_resources(),
            _system_config=LOCAL_RAY_SYSTEM_CONFIG,
        )
    try:
        yield cluster
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def run_torture(
    config: TortureConfig, on_progress: Callable[[Snapshot], None] | None = None
) -> TortureResult:
    """Run the workload and the nemesis for ``config.seconds``, and on until every selected
    fault kind has been injected once, then check. Raises only when the run cannot start
    (no Java, no Ray); anomalies are in the result."""
    report = on_progress or (lambda _s: None)
    began = time.monotonic()

    def clock() -> float:
        return time.monotonic() - began

    if config.keep is not None:
        config.keep.mkdir(parents=True, exist_ok=False)
    home = config.keep or Path(tempfile.mkdtemp(prefix="eventledger-torture-"))
    ports = [free_port() for _ in range(2 * config.brokers)]
    brokers = BrokerCluster(ClusterHome.of(home / "broker", ports))
    history = History()
    try:
        report(Snapshot("starting the broker", clock(), config.seconds, 0, 0, 0))
        bootstrap = brokers.start()
        with _ray(Fault.NODE in config.faults) as cluster:
            settings = Settings.resolve(
                app_id=f"torture-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:6]}",
                bootstrap_servers=bootstrap,
                partitions=config.partitions,
                reply_lanes=config.reply_lanes,
                state_dir=str(home / "state"),
                environ={},
            )
            report(Snapshot("deploying the service", clock(), config.seconds, 0, 0, 0))
            deploy_service(settings, timeout=180)
            try:
                return _drive(
                    config, settings, brokers, cluster, history=history, clock=clock, report=report
                )
            finally:
                with contextlib.suppress(Exception):
                    stop_service(settings.app_id, timeout=60)
    finally:
        brokers.stop()
        if config.keep is None:
            shutil.rmtree(home, ignore_errors=True)


def _drive(
    config: TortureConfig,
    settings: Settings,
    brokers: BrokerCluster,
    cluster: Any | None,
    *,
    history: History,
    clock: Callable[[], float],
    report: Callable[[Snapshot], None],
) -> TortureResult:
    since: list[float] = []  # when the workload started

    def tell(phase: str, faults: int = 0) -> None:
        ops, answered = history.counts()
        elapsed = clock() - since[0] if since else 0.0
        moving = nemesis.repartition_line()
        phase = f"{phase} · repartition {moving}" if moving else phase
        report(Snapshot(phase, elapsed, config.seconds, ops, answered, faults))

    notes: list[str] = []
    workload = Workload(
        settings,
        history,
        clients=config.clients,
        bank=Bank(accounts=config.accounts),
        policy=config.policy,
        seed=config.seed,
        clock=clock,
    )
    nemesis = Nemesis(
        list(config.faults),
        settings,
        brokers,
        clock,
        plan=config.plan,
        cluster=cluster,
        seed=config.seed,
        accounts=workload.bank.account_ids(),
    )
    reader = StateReader(settings, AGGREGATE)
    try:
        tell("opening accounts")
        workload.open_accounts()
        workload.probe_reuse()
        started = clock()
        since.append(started)
        workload.start()
        reader.start()
        nemesis.start()
        while clock() - started < config.seconds or not nemesis.each_kind_tried():
            tell("workload + nemesis", nemesis.injected())
            nemesis.serve(1.0)
        workload.stop()
        tell("stopping the nemesis", nemesis.injected())
        nemesis.stop()
        tell("healing", nemesis.injected())
        nemesis.heal(timeout=config.settle_timeout)
        tell("waiting for the ops in flight", nemesis.injected())
        if not workload.join(config.policy.budget + 30):
            notes.append("a client thread was still running at the check")
    finally:
        workload.close()
        reader.stop()
    tell("waiting for every partition to run", nemesis.injected())
    if not _settled(settings, config.settle_timeout):
        notes.append("the service did not settle (every partition running) before the check")
    tell("reading the events and the actors", nemesis.injected())
    repartitions = sorted(nemesis.repartitions.values(), key=lambda r: r.number)
    notes.extend(f"{r}" for r in repartitions if r.phase != "done")
    grown = dataclasses.replace(settings, partitions=nemesis.partitions)
    facts, money = read_facts(dataclasses.replace(settings, partitions=live_partitions(settings)))
    held = actor_balances(grown)
    if held is None:
        notes.append("the actors' balances could not be read")
    balances, owners, twice = held if held is not None else (None, {}, [])
    reader.check(quiet=True)
    result = check(history.ops(), facts, balances, money, reader.problems, held_twice=twice)
    result.state_reads = (reader.reads, reader.failed_reads)
    return TortureResult(
        config=config,
        app_id=settings.app_id,
        check=result,
        ops=history.ops(),
        faults=list(nemesis.records),
        errors=workload.errors,
        shared_ids=workload.shared.paired,
        duration=clock(),
        zero_unix_ms=round((time.time() - clock()) * 1000),
        notes=notes,
        repartitions=repartitions,
        owners=owners,
        forwarded=forwarded(grown) if repartitions else None,
    )


def _settled(settings: Settings, timeout: float) -> bool:
    """Wait until the coordinator reports every partition running and no rebuild active."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            handle = find_coordinator(settings.app_id)
            status: ServiceStatus | None = (
                ray.get(handle.status.remote(), timeout=10) if handle else None
            )
        except Exception as e:  # restarting: ask again
            log.info("status unavailable: %s", e)
            status = None
        rows = status.rows if status is not None else []
        if rows and all(r.state is RowState.RUNNING for r in rows):
            return True
        time.sleep(0.5)
    return False
