"""Open-loop latency through ``LedgerClient``: commands are sent at fixed times whatever the
replies do, and each round trip is measured from its scheduled send time to its reply (so a
stalled sender or service shows up in the figures instead of slowing the load down)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Protocol

import ray
from rich.progress import Progress

from actors.client import LedgerClient
from actors.deployment import stop_service
from actors.messages import PartitionStats
from actors.ray_state import partition_actors
from bench.config import BenchConfig
from bench.model import Latency, RunContext
from bench.systems.eventledger import settings_config
from eventledger.assembly import deploy_service
from eventledger.workload import Workload
from topology.envelopes import Reply
from topology.settings import Settings

__all__ = [
    "Sender",
    "open_accounts",
    "open_loop",
    "percentile",
    "run_kstreams_latency",
    "run_latency",
]

log = logging.getLogger(__name__)

_WINDOW = 256  # commands in flight while opening the accounts


class Sender(Protocol):
    """What the latency and e2e phases need of a client (``LedgerClient``, ``ReplyChannel``)."""

    def send(self, aggregate_id: str, command: Any, /) -> Future[Reply]: ...


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run_latency(ctx: RunContext) -> Latency:
    cfg = ctx.config
    settings = Settings.resolve(
        app_id=f"{ctx.prefix}-lat", bootstrap_servers=ctx.bootstrap, partitions=cfg.partitions
    )
    workload = _workload(ctx)
    deploy_service(settings, timeout=300)
    try:
        handles = partition_actors(settings.app_id, settings.partitions)
        with LedgerClient(settings, timeout=60) as client:
            open_accounts(ctx, client, workload)
            latencies, from_send, lag = _warm_and_measure(ctx, client, workload, "latency")
        stats: list[PartitionStats] = ray.get([h.stats.remote() for h in handles], timeout=60)
    finally:
        stop_service(settings.app_id)
    batches = sum(s.batches for s in stats)
    processed = sum(s.processed for s in stats)
    return _summary(
        cfg, latencies, from_send=from_send, lag=lag,
        facts={
            "transactions (whole phase)": batches,
            "commands per transaction": processed / batches if batches else 0.0,
            "last commit per actor (ms)": [round(s.last_commit_ms, 1) for s in stats],
        },
        config={
            **settings_config(settings),
            "accounts": cfg.accounts,
            "warm-up (s, not measured)": cfg.warmup,
            "client": "one LedgerClient (its own producer config, one reply partition)",
        },
    )  # fmt: skip


def run_kstreams_latency(ctx: RunContext) -> Latency:
    """The same open loop against the Kafka Streams peer, through ``LedgerClient``'s
    request/reply channel (``bench.peers``)."""
    from bench.peers import peer_channel
    from bench.systems.kstreams import KStreamsApp

    cfg = ctx.config
    workload = _workload(ctx)
    app = KStreamsApp(ctx, "lat", cfg.partitions)
    try:
        app.wait_settled()
        with peer_channel(ctx.bootstrap, app.app_id, cfg.partitions) as client:
            open_accounts(ctx, client, workload)
            latencies, from_send, lag = _warm_and_measure(ctx, client, workload, "kstreams latency")
        report = app.stop()
    finally:
        app.kill()
    return _summary(
        cfg, latencies, from_send=from_send, lag=lag,
        facts={"processed (whole phase)": report["processed"]},
        config={
            **KStreamsApp.config(),
            "accounts": cfg.accounts,
            "warm-up (s, not measured)": cfg.warmup,
            "client": "one ReplyChannel (LedgerClient's channel, one reply lane)",
        },
    )  # fmt: skip


def run_echo_latency(ctx: RunContext) -> Latency:
    """The same open loop against the raw echo (the limit): ``LedgerClient``'s
    request/reply channel, the commands' own bytes come back."""
    from bench.peers import peer_channel
    from bench.systems.echo import CONFIG, running_echo

    cfg = ctx.config
    with running_echo(ctx, "echo-lat") as (app_id, report):
        client = peer_channel(ctx.bootstrap, app_id, cfg.partitions, echo=True)
        with client:
            latencies, from_send, lag = _warm_and_measure(
                ctx, client, _workload(ctx), "echo latency"
            )
    return _summary(
        cfg, latencies, from_send=from_send, lag=lag,
        facts={"echoed (whole phase)": report["processed"]},
        config={
            "echo": CONFIG,
            "warm-up (s, not measured)": cfg.warmup,
            "client": "one ReplyChannel (LedgerClient's channel, one reply lane)",
        },
    )  # fmt: skip


def _workload(ctx: RunContext) -> Workload:
    """The latency phase's commands: the warm-up's, then the measured ones (any system)."""
    cfg = ctx.config
    count = round(cfg.rate * cfg.warmup) + round(cfg.rate * cfg.duration)
    return Workload(accounts=cfg.accounts, commands=count, seed=cfg.seed + 1)


def _warm_and_measure(
    ctx: RunContext, client: Sender, workload: Workload, label: str
) -> tuple[list[float], list[float], float]:
    """The open loop at the configured rate: the warm-up (not measured), then the measured
    part; returns what ``open_loop`` returns for the measured part."""
    cfg = ctx.config
    operations = workload.operations()
    open_loop(
        ctx.progress, client, operations, rate=cfg.rate, count=round(cfg.rate * cfg.warmup),
        label=f"{label} warm-up",
    )  # fmt: skip
    return open_loop(
        ctx.progress, client, operations, rate=cfg.rate, count=round(cfg.rate * cfg.duration),
        label=f"{label} at {cfg.rate:,.0f}/s",
    )  # fmt: skip


def _summary(
    cfg: BenchConfig, latencies: list[float], *,
    from_send: list[float], lag: float, facts: dict[str, Any], config: dict[str, Any],
) -> Latency:  # fmt: skip
    ordered = sorted(latencies)
    actual = sorted(from_send)
    return Latency(
        rate=cfg.rate,
        duration=cfg.duration,
        sent=round(cfg.rate * cfg.duration),
        answered=len(ordered),
        percentiles_ms={
            "p50": percentile(ordered, 0.50),
            "p90": percentile(ordered, 0.90),
            "p99": percentile(ordered, 0.99),
            "p99.9": percentile(ordered, 0.999),
        },
        max_ms=ordered[-1] if ordered else 0.0,
        mean_ms=sum(ordered) / len(ordered) if ordered else 0.0,
        send_lag_max_ms=lag * 1000.0,
        from_send_ms={
            "p50": percentile(actual, 0.50),
            "p99": percentile(actual, 0.99),
            "max": actual[-1] if actual else 0.0,
        },
        facts=facts,
        config=config,
    )


def open_accounts(ctx: RunContext, client: Sender, workload: Workload) -> None:
    slots = threading.Semaphore(_WINDOW)
    task = ctx.progress.add_task("latency: opening accounts", total=workload.accounts)
    futures: list[Future[Reply]] = []

    def done(_: Future[Reply]) -> None:
        slots.release()
        ctx.progress.advance(task)

    for account, command in workload.openings():
        slots.acquire()
        future = client.send(account, command)
        future.add_done_callback(done)
        futures.append(future)
    refused = [f.result(120) for f in futures if not f.result(120).accepted]
    if refused:
        raise RuntimeError(f"{len(refused)} accounts could not be opened: {refused[0]}")


def open_loop(
    progress: Progress,
    client: Sender,
    commands: Iterator[tuple[str, Any]] | Iterable[tuple[str, Any]],
    *,
    rate: float,
    count: int,
    label: str,
) -> tuple[list[float], list[float], float]:
    """Send ``count`` commands at ``rate``. Returns the round trips (ms) from the scheduled
    send times, the same from the actual send calls (the sender's own lag left out, for
    diagnosis), and the worst send lag (s)."""
    latencies: list[float] = []
    from_send: list[float] = []
    task = progress.add_task(label, total=count)

    def done(scheduled: float, sent: float, _: Future[Reply]) -> None:
        now = time.perf_counter()
        latencies.append((now - scheduled) * 1000.0)
        from_send.append((now - sent) * 1000.0)

    futures: list[Future[Reply]] = []
    interval = 1.0 / rate
    start = time.perf_counter() + 0.05
    lag = 0.0
    source = iter(commands)
    for i in range(count):
        account, command = next(source)
        scheduled = start + i * interval
        now = time.perf_counter()
        if scheduled > now:
            time.sleep(scheduled - now)
        else:
            lag = max(lag, now - scheduled)
        sent = time.perf_counter()
        future = client.send(account, command)
        future.add_done_callback(functools.partial(done, scheduled, sent))
        futures.append(future)
        if i % 100 == 0:
            progress.update(task, completed=i)
    deadline = time.monotonic() + 60
    for f in futures:
        try:
            f.result(max(0.0, deadline - time.monotonic()))
        except Exception as e:  # counted as unanswered below
            log.warning("no reply: %s", e)
            break
    progress.update(task, completed=count)
    return latencies, from_send, lag
