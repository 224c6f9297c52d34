"""What a run shares (its context) and what it measures (result records)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.config import BenchConfig

__all__ = [
    "E2E",
    "Failover",
    "FailoverRun",
    "HistoryCost",
    "HttpServing",
    "Latency",
    "RepartitionRun",
    "Restore",
    "RunContext",
    "RunResults",
    "Throughput",
]

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """One run: its config, broker, topic prefix (contains the run id), output places."""

    config: BenchConfig
    bootstrap: str
    run_id: str
    console: Console
    progress: Progress
    log_dir: Path

    @property
    def prefix(self) -> str:
        return f"bench-{self.run_id}"


@dataclass
class Throughput:
    """Draining the commands topic: ``commands`` records from first consumed to last
    committed (visible under read_committed)."""

    system: str
    commands: int
    first_at: float
    last_at: float
    config: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(self.last_at - self.first_at, 1e-9)

    @property
    def rate(self) -> float:
        return self.commands / self.seconds

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": self.seconds, "commands_per_second": self.rate}


@dataclass
class Latency:
    """Open-loop round trips through ``LedgerClient``, from scheduled send to reply."""

    rate: float
    duration: float
    sent: int
    answered: int
    percentiles_ms: dict[str, float]
    max_ms: float
    mean_ms: float
    send_lag_max_ms: float
    from_send_ms: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Restore:
    """Bringing ``keys`` accounts back into memory (or into a local store) after a start."""

    system: str
    keys: int
    seconds: float
    records: int
    rss_bytes: int
    method: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "records_per_second": self.rate}


@dataclass
class E2E:
    """Closed loop through a client: ``clients`` sender processes, each with ``window``
    commands in flight, each round trip from the send call to the reply."""

    system: str
    clients: int
    window: int
    commands: int
    answered: int
    seconds: float
    percentiles_ms: dict[str, float]
    broker_cpu_seconds: float | None
    broker_requests: dict[str, int] | None = None  # by request type, across the setting
    cpu_us_per_command: dict[str, float] = field(default_factory=dict)  # by role
    machine_busy: float | None = None  # busy share of all cores across the setting
    config: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def broker_cpu_us_per_command(self) -> float | None:
        if self.broker_cpu_seconds is None or not self.answered:
            return None
        return self.broker_cpu_seconds / self.answered * 1e6

    @property
    def broker_requests_per_command(self) -> float | None:
        if self.broker_requests is None or not self.answered:
            return None
        return sum(self.broker_requests.values()) / self.answered

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "commands_per_second": self.rate,
            "broker_cpu_us_per_command": self.broker_cpu_us_per_command,
            "broker_requests_per_command": self.broker_requests_per_command,
        }


@dataclass
class HistoryCost:
    """The same history queries on an account of ``short`` events and one of ``long``, in one
    partition: the p50 of each, in ms, as (short, long), through Ray to the history actor
    (``p50_ms``) and on an index in the bench's process (``in_process_p50_ms``)."""

    short: int
    long: int
    repeat: int
    p50_ms: dict[str, tuple[float, float]]
    in_process_p50_ms: dict[str, tuple[float, float]]
    facts: dict[str, Any] = field(default_factory=dict)

    def ratio(self, query: str, *, in_process: bool = False) -> float:
        """The long account's p50 ÷ the short one's."""
        short, long = (self.in_process_p50_ms if in_process else self.p50_ms)[query]
        return long / short if short > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ratios": {q: self.ratio(q) for q in self.p50_ms},
            "in_process_ratios": {q: self.ratio(q, in_process=True) for q in self.p50_ms},
        }


@dataclass
class FailoverRun:
    """One variant of the failover phase (``bench/failover.py``): the writer's process of a
    partition with ``standbys`` standbys killed under load. Seconds: the answer gap (its
    longest silence), the kill to the reply that ends it, to the partition being back (its
    writer answering RUNNING from another process) and, with a standby, to the takeover's
    record. ``steps_ms``: the promoted member's ``takeover_steps_ms``, or without a standby
    the restart's restores (``snapshots``, ``ids``), in ms."""

    standbys: int
    gap_seconds: float
    kill_to_reply_seconds: float
    kill_to_back_seconds: float
    kill_to_record_seconds: float | None
    steps_ms: dict[str, float]
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failover:
    """The failover phase: one run per standby count, on ``keys`` accounts and ``ids``
    remembered ids at ``rate`` deposits/s."""

    keys: int
    ids: int
    rate: float
    runs: list[FailoverRun] = field(default_factory=list)

    def run(self, standbys: int) -> FailoverRun | None:
        return next((r for r in self.runs if r.standbys == standbys), None)

    @property
    def gap_ratio(self) -> float | None:
        """The gap with a standby ÷ the gap without (None: one of them is missing)."""
        without, with_one = self.run(0), self.run(1)
        if without is None or with_one is None or without.gap_seconds <= 0:
            return None
        return with_one.gap_seconds / without.gap_seconds

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "gap_ratio": self.gap_ratio}


@dataclass
class HttpServing:
    """The HTTP API in each serving mode beside the Python client (``bench/http_phase.py``):
    per mode, its worker's report (``figures``: closed-loop rates at ``inflight`` in flight,
    the client's alone and beside ``get_rate`` GETs/s and beside a closed loop of GETs,
    open-loop p50/p99 at ``rate``); the HTTP echo limit's POST rate at ``inflight``."""

    inflight: int
    seconds: float
    rate: float
    open_seconds: float
    get_rate: float
    replicas: int
    partitions: int
    accounts: int
    echo_rate: float | None = None
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ratios(self, mode: str) -> dict[str, float]:
        """POST ÷ client, POST ÷ echo (when the echo was measured), GET ÷ client, the client
        beside ``get_rate`` GETs/s ÷ alone (the goal) and beside a closed loop of GETs ÷
        alone, and the p50 and p99 (ms) at ``rate`` of HTTP minus the client's."""
        f = self.modes[mode]["figures"]
        client = f["client_rate"]
        echo = {"post_vs_echo": f["post_rate"] / self.echo_rate} if self.echo_rate else {}
        return {
            "post_vs_client": f["post_rate"] / client,
            **echo,
            "get_vs_client": f["get_rate"] / client,
            "client_beside_gets": f["client_beside_gets_rate"] / f["client_alone_rate"],
            "client_beside_closed_gets": (
                f["client_beside_closed_gets_rate"] / f["client_alone_rate"]
            ),
            "p50_minus_client_ms": f["post_open_p50_ms"] - f["client_open_p50_ms"],
            "p99_minus_client_ms": f["post_open_p99_ms"] - f["client_open_p99_ms"],
        }

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratios": {m: self.ratios(m) for m in self.modes}}


@dataclass
class RepartitionRun:
    """The repartition phase (``bench/repartition.py``): ``keys`` accounts grown from
    ``from_partitions`` to ``to_partitions`` under ``rate`` deposits/s. Seconds: the switch
    (request → done) and its moving part (first move requested → done); ``pauses`` in ms:
    per leg kind (``handoff``, ``install``, ``legs``: both) p50 and max over the moves,
    ``partition_max`` each partition's longest leg; ``latency_ms`` per window (``before``,
    ``during``, ``after`` the switch): n, p50, p99, max; ``answer_gaps_ms`` per window
    (``before`` the switch; ``growing``: request → first move requested; ``moving``: first
    move → done): each answering partition's longest silence, p50 and max over them;
    ``peer``: why no peer is measured."""

    keys: int
    rate: float
    from_partitions: int
    to_partitions: int
    switch_seconds: float
    moving_seconds: float
    moves: int
    slots: int
    slots_moved: int
    accounts_moved: int
    accounts_per_second: float
    pauses: dict[str, Any]
    latency_ms: dict[str, dict[str, float]]
    answer_gaps_ms: dict[str, dict[str, Any]]
    peer: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResults:
    """Everything one run measured; ``failures`` name what did not produce a valid figure."""

    throughput: dict[str, Throughput] = field(default_factory=dict)
    latency: Latency | None = None
    peer_latency: dict[str, Latency] = field(default_factory=dict)
    e2e: list[E2E] = field(default_factory=list)
    restore: dict[str, Restore] = field(default_factory=dict)
    history: HistoryCost | None = None
    failover: Failover | None = None
    http: HttpServing | None = None
    repartition: RepartitionRun | None = None
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures
