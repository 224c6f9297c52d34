"""Waiting on a condition: poll it until it holds, and fail with what was awaited after a
deadline. The one place an integration test pauses between two looks at the system; a test
that sleeps anywhere else sleeps because the passing time is what it tests, and says so."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import ray

from topology.control import RepartitionPhase, RepartitionRecord

__all__ = ["repartition_ended", "wait_ready", "wait_until"]

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    tolerate: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``condition`` every ``interval`` s until it returns something truthy, and return
    that; fail after ``timeout`` s naming ``what``. An exception of a ``tolerate`` type counts
    as "not yet" (a system that is restarting), and the last one is named on failure; any
    other exception fails at once."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            found = condition()
            if found:
                return found
        except tolerate as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})"
            )
        time.sleep(interval)


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Wait until the HTTP API at ``url`` reports ready. Readiness is checked in the
    background and cached: a fresh worker answers 503 until its first check ends, and a
    worker whose check ran while partitions were starting until its next one."""
    wait_until(
        lambda: httpx.get(f"{url}/readyz", timeout=10).json() == {"status": "ready"},
        timeout,
        f"the API at {url} to report ready",
    )


def repartition_ended(coordinator: Any) -> RepartitionRecord | None:
    """The coordinator's latest repartition once DONE or FAILED (None: under way, or none):
    what ``wait_until`` polls to follow a repartition to its end."""
    record: RepartitionRecord | None = ray.get(
        coordinator.repartition_progress.remote(), timeout=30
    ).record
    ended = (RepartitionPhase.DONE, RepartitionPhase.FAILED)
    return record if record is not None and record.phase in ended else None
