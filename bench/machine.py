"""The machine and the versions a run measured, for the results."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from typing import Any

import confluent_kafka
import msgspec
import psutil
import ray

from bench.procs import REPO
from eventledger.broker import KAFKA_VERSION

__all__ = ["machine", "versions"]

log = logging.getLogger(__name__)


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def versions(external_broker: bool) -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "kafka": "external cluster" if external_broker else f"Apache Kafka {KAFKA_VERSION}",
        "confluent-kafka": str(confluent_kafka.__version__),  # a str at run time
        "librdkafka": confluent_kafka.libversion()[0],
        "ray": ray.__version__,
        "msgspec": msgspec.__version__,
        "eventledger commit": _commit(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"
