"""What one benchmark run does: sizes, rates, systems and phases, with a ``--quick`` preset."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

__all__ = ["QUICK", "BenchConfig", "Phase", "SystemName"]

log = logging.getLogger(__name__)


class SystemName(StrEnum):
    EVENTLEDGER = "eventledger"
    QUIX = "quix"
    RAWPIPE = "rawpipe"
    KSTREAMS = "kstreams"


class Phase(StrEnum):
    THROUGHPUT = "throughput"
    LATENCY = "latency"
    RESTORE = "restore"
    E2E = "e2e"
    HISTORY = "history"
    FAILOVER = "failover"
    HTTP = "http"
    REPARTITION = "repartition"


@dataclass(frozen=True)
class BenchConfig:
    """One run. Sizes default to issue 4's full run; ``QUICK`` holds the smoke-test sizes."""

    accounts: int = 10_000
    commands: int = 200_000
    partitions: int = 4
    rate: float = 1_000.0
    duration: float = 30.0
    warmup: float = 2.0
    restore_keys: int = 1_000_000
    restore_ids: int = 10_000_000
    seed: int = 7
    systems: tuple[SystemName, ...] = tuple(SystemName)
    phases: tuple[Phase, ...] = tuple(Phase)
    quick: bool = False
    bootstrap: str | None = None
    out: Path | None = None
    markdown: Path | None = None
    quix_commit_interval: float = 1.0
    quix_replicas: int = 0  # 0: one per core (at most one per partition)
    rawpipe_processes: int = 0  # 0: one per core (at most one per partition)
    quix_views: bool = True
    keep_topics: bool = False
    e2e_commands: int = 20_000  # per (clients, window) setting
    e2e_settings: tuple[tuple[int, int], ...] = ((1, 256), (8, 32))  # (clients, in flight each)
    history_events: int = 100_000  # the history phase's long account (the short one: 100)
    failover_keys: int = 1_000_000  # the failover phase's accounts
    failover_ids: int = 1_000_000  # and its remembered ids
    failover_rate: float = 200.0  # deposits per second, open loop, across the kill
    http_modes: tuple[str, ...] = (
        "proxy",
        "direct",
        "haproxy",
        "uvicorn",
    )  # eventledger.http Serving
    http_accounts: int = 1_000  # the http phase's accounts
    http_inflight: int = 64  # its closed loops' requests in flight
    http_seconds: float = 10.0  # each closed loop's length
    http_rate: float = 150.0  # its open loops' requests per second
    http_open_seconds: float = 10.0  # each open loop's length
    http_get_rate: float = 350.0  # GETs/s of the open-loop read load beside the commands
    http_standbys: int | None = None  # standbys per partition in the http phase (None: default)
    http_replicas: int = 1  # API replicas (Serve's, or uvicorn workers on the node)
    repartition_keys: int = 1_000_000  # the repartition phase's accounts
    repartition_from: int = 4  # its partitions before
    repartition_to: int = 8  # and after
    repartition_rate: float = 200.0  # deposits per second, open loop, across the switch
    repartition_before: float = 10.0  # seconds of load before the switch (and after it)
    drain_timeout: float = 1_800.0
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (
            "accounts",
            "commands",
            "partitions",
            "restore_keys",
            "restore_ids",
            "e2e_commands",
            "failover_keys",
            "failover_ids",
            "http_accounts",
            "http_inflight",
            "http_replicas",
            "repartition_keys",
            "repartition_from",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if min(self.rate, self.duration, self.failover_rate) <= 0:
            raise ValueError("rate, duration and failover_rate must be positive")
        if min(self.http_seconds, self.http_rate, self.http_open_seconds, self.http_get_rate) <= 0:
            raise ValueError(
                "http_seconds, http_rate, http_open_seconds and http_get_rate must be positive"
            )
        if self.repartition_to <= self.repartition_from:
            raise ValueError("repartition_to must be above repartition_from")
        if min(self.repartition_rate, self.repartition_before) <= 0:
            raise ValueError("repartition_rate and repartition_before must be positive")
        if self.quix_commit_interval <= 0:
            raise ValueError("quix_commit_interval must be positive")
        if self.history_events < 1_000:
            raise ValueError("history_events must be at least 1,000")

    @property
    def replicas(self) -> int:
        """Quix Streams processes in the consumer group."""
        return self.quix_replicas or min(self.partitions, os.cpu_count() or 1)

    @property
    def rawpipe_workers(self) -> int:
        """Raw-pipe processes, each with a share of the partitions."""
        return min(self.rawpipe_processes or os.cpu_count() or 1, self.partitions)

    def runs(self, system: SystemName) -> bool:
        return system in self.systems

    def does(self, phase: Phase) -> bool:
        return phase in self.phases

    @property
    def complete(self) -> bool:
        """Every system and every phase at full size: the run ``latest.md`` summarises."""
        return (
            not self.quick
            and set(self.systems) == set(SystemName)
            and set(self.phases) == set(Phase)
        )


QUICK = BenchConfig(
    accounts=300,
    commands=3_000,
    partitions=2,
    rate=200.0,
    duration=3.0,
    warmup=0.5,
    restore_keys=20_000,
    restore_ids=50_000,
    e2e_commands=600,
    failover_keys=20_000,
    failover_ids=20_000,
    http_accounts=100,
    http_seconds=2.0,
    http_open_seconds=2.0,
    repartition_keys=50_000,
    repartition_before=5.0,
    quick=True,
)
"""Small enough for the smoke test: seconds per phase."""
