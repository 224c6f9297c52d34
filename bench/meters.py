"""What a piece of work costs the machine. ``BrokerMeter``: the local broker's JVM CPU seconds
(psutil) and its request counts by type (``BrokerRequests`` in ``bench/kstreams``: the
broker's ``RequestMetrics`` meters read once through the JDK's Attach API, so the broker runs
with no JMX port and pays nothing between reads). ``CpuMeter``: CPU seconds of every process
on the machine grouped by role, and the machine's busy share. All readings are cumulative;
callers take differences.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil

__all__ = ["BrokerMeter", "BrokerReading", "CpuMeter", "CpuReading", "broker_process", "role_of"]

log = logging.getLogger(__name__)

# Fetch requests are also counted under FetchConsumer / FetchFollower (by who fetches).
_SUBCOUNTS = frozenset({"FetchConsumer", "FetchFollower"})


def broker_process(bootstrap: str) -> psutil.Process | None:
    """The local broker's JVM (a ``kafka.Kafka`` process listening on the bootstrap port), or
    None (an external broker, or one this user cannot see)."""
    port = urlsplit("//" + bootstrap.split(",", maxsplit=1)[0]).port
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "kafka.Kafka" not in (proc.info["cmdline"] or []):
                continue
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                    return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


@dataclass(frozen=True)
class BrokerReading:
    """Cumulative CPU seconds and requests by type; either is None when it cannot be read."""

    cpu_seconds: float | None
    requests: Counter[str] | None

    def __sub__(self, earlier: BrokerReading) -> BrokerReading:
        cpu = (
            None
            if self.cpu_seconds is None or earlier.cpu_seconds is None
            else self.cpu_seconds - earlier.cpu_seconds
        )
        requests = (
            None
            if self.requests is None or earlier.requests is None
            else Counter({k: v for k, v in (self.requests - earlier.requests).items() if v})
        )
        return BrokerReading(cpu, requests)


class BrokerMeter:
    """Reads the local broker behind ``bootstrap``; reads nothing for a broker it cannot see."""

    def __init__(self, bootstrap: str) -> None:
        self.process = broker_process(bootstrap)
        self._jar: str | None = None
        if self.process is not None and shutil.which("java"):
            from bench.systems.kstreams import ensure_jar

            try:
                self._jar = str(ensure_jar())
            except RuntimeError as e:  # Maven missing or failing: CPU only
                log.warning("broker request counts unavailable: %s", e)

    def read(self) -> BrokerReading:
        if self.process is None:
            return BrokerReading(None, None)
        try:
            t = self.process.cpu_times()
        except psutil.NoSuchProcess:
            return BrokerReading(None, None)
        return BrokerReading(float(t.user + t.system), self._requests())

    def _requests(self) -> Counter[str] | None:
        if self._jar is None or self.process is None:
            return None
        done = subprocess.run(
            ["java", "-cp", self._jar, "eventledger.bench.BrokerRequests", str(self.process.pid)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log.warning("broker request counts unavailable: %s", done.stderr.strip()[-300:])
            return None
        counts: dict[str, int] = json.loads(done.stdout)
        return Counter({k: v for k, v in counts.items() if k not in _SUBCOUNTS})


def role_of(cmdline: list[str]) -> str:
    """The role a process plays in a bench run, from its command line: ``broker``, a Ray
    actor by class (``actor PartitionWorker``), ``ray`` (Ray's own daemons and idle
    workers), ``echo``, ``senders`` (e2e sender processes), ``kstreams``, ``bench`` (the
    harness) or ``other``."""
    line = " ".join(cmdline)
    if "kafka.Kafka" in line:
        return "broker"
    if "eventledger.bench.LedgerStreams" in line or "ledger-streams" in line:
        return "kstreams"
    if cmdline and cmdline[0].startswith("ray::"):
        name = cmdline[0].removeprefix("ray::").split(".")[0].split(" ")[0]
        return "ray" if name == "IDLE" else f"actor {name}"
    if any(part in line for part in ("/ray/", "raylet", "gcs_server")):
        return "ray"
    if "bench.systems.echo_worker" in line:
        return "echo"
    if "bench.e2e_worker" in line:
        return "senders"
    if "-m bench" in line or "bench/__main__" in line:
        return "bench"
    return "other"


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds by role, and the machine's busy and total CPU seconds (all cores)."""

    by_role: Counter[str]
    busy: float
    total: float

    def __sub__(self, earlier: CpuReading) -> CpuReading:
        return CpuReading(
            Counter({k: v for k, v in (self.by_role - earlier.by_role).items() if v > 0}),
            self.busy - earlier.busy,
            self.total - earlier.total,
        )


class CpuMeter:
    """Reads every visible process's CPU seconds, by ``role_of``. A process that exits between
    two readings loses what it used since the first: e2e senders report their own instead."""

    def read(self) -> CpuReading:
        by_role: Counter[str] = Counter()
        for proc in psutil.process_iter(["cmdline", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is None:
                continue
            by_role[role_of(proc.info["cmdline"] or [])] += times.user + times.system
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        total = sum(machine)
        return CpuReading(by_role, total - idle, total)
