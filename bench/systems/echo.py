"""The raw echo as a running service for the e2e and latency phases: its topics, and one
``bench.systems.echo_worker`` process (consume the commands → produce each command's bytes
back to its reply lane; no transactions, no state)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.model import RunContext
from bench.procs import Worker

__all__ = ["CONFIG", "ECHO_PRODUCER", "running_echo"]

# The echo answers at once, as an actor's commit flushes its batch: with linger.ms 0 the
# echo's round trips were about half and its closed-loop rate about twice those with the
# clients' 5 ms (measured 2026-11-28), so it is the stricter limit.
ECHO_PRODUCER = {"linger.ms": 0}
CONFIG = (
    "1 process: consume → produce the command's bytes to its reply lane; no transactions, "
    "no state; actors.kafka client configs, its producer with linger.ms 0"
)


@contextmanager
def running_echo(ctx: RunContext, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Start the echo on fresh topics ``{prefix}-{name}``; yields (app id, a dict that holds
    the worker's report, ``processed`` among it, once the block has ended without error)."""
    from actors.admin import ensure_topics
    from topology.topics import TopicLayout

    partitions = ctx.config.partitions
    app_id = f"{ctx.prefix}-{name}"
    ensure_topics(ctx.bootstrap, TopicLayout(app_id, partitions))
    echo = Worker(
        f"{name}-worker", sys.executable, "bench.systems.echo_worker",
        {"bootstrap": ctx.bootstrap, "app_id": app_id, "partitions": partitions,
         "reply_lanes": 1, "producer": ECHO_PRODUCER},
        ctx.log_dir,
    )  # fmt: skip
    report: dict[str, Any] = {}
    try:
        echo.wait_for("ready", 120)
        yield app_id, report
        echo.terminate()
        report.update(echo.finish(60))
    finally:
        echo.kill()
