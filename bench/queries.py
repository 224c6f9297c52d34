"""``python -m bench.queries``: what a query through Ray costs the service, and what a query
load takes from the commands beside it.

Four partition actors (bare, no coordinator), ``accounts`` opened, then three closed loops
in this process, each for ``seconds``:

- **queries alone**: ``threads`` threads each asking ``BankClient.reads.view`` (a Ray call to
  the actor that owns the account) one after the other;
- **commands alone**: one client keeping ``window`` deposits in flight;
- **both at once**: the same two loops together.

Per loop: the rates, query round trips (p50 / p99), and the machine's CPU per operation by
process role (``bench.meters.CpuMeter``: ``bench`` is this process, the Ray driver and the
client). Queries read committed state only; they never enter a batch or a transaction.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from actors.deployment import stop_service
from bench.latency import percentile
from bench.meters import CpuMeter
from eventledger.assembly import deploy_service
from eventledger.bank import BankClient
from eventledger.runtime import ensure_broker, ensure_ray
from ledger.commands import Deposit, OpenAccount
from topology.envelopes import Reply
from topology.names import NAMESPACE
from topology.settings import Settings

__all__ = ["Loop", "main", "run_query_bench"]


@dataclass
class Loop:
    """One closed loop's outcome: operations per second, query round trips (ms), CPU µs per
    operation (queries + commands) by role, and the machine's busy share."""

    name: str
    queries_per_s: float = 0.0
    commands_per_s: float = 0.0
    query_ms: dict[str, float] = field(default_factory=dict)
    cpu_us_per_op: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0


def _query_loop(
    client: BankClient, accounts: list[str], stop: threading.Event, out: list[float]
) -> None:
    rng = random.Random()
    while not stop.is_set():
        started = time.perf_counter()
        view = client.reads.view(rng.choice(accounts))
        if view is None:
            raise RuntimeError("an opened account has no view")
        out.append((time.perf_counter() - started) * 1000.0)


def _command_loop(
    client: BankClient, accounts: list[str], window: int, stop: threading.Event, out: list[int]
) -> None:
    rng = random.Random(7)
    slots = threading.Semaphore(window)
    futures: list[Future[Reply]] = []
    while not stop.is_set():
        slots.acquire()
        future = client.send(rng.choice(accounts), Deposit(1))
        future.add_done_callback(lambda _f: slots.release())
        futures.append(future)
    refused = sum(1 for f in futures if not f.result(120).accepted)
    if refused:
        raise RuntimeError(f"{refused} deposits were refused")
    out.append(len(futures))


def _measure(
    name: str,
    client: BankClient,
    accounts: list[str],
    *,
    threads: int,
    window: int,
    seconds: float,
) -> Loop:
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    sent: list[int] = []
    workers = [
        threading.Thread(target=_query_loop, args=(client, accounts, stop, latencies[i]))
        for i in range(threads)
    ]
    if window:
        workers.append(
            threading.Thread(target=_command_loop, args=(client, accounts, window, stop, sent))
        )
    meter = CpuMeter()
    before = meter.read()
    started = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join(180)
    elapsed = time.perf_counter() - started
    cpu = meter.read() - before
    ordered = sorted(x for part in latencies for x in part)
    ops = len(ordered) + sum(sent)
    return Loop(
        name=name,
        queries_per_s=len(ordered) / elapsed,
        commands_per_s=sum(sent) / elapsed,
        query_ms={"p50": percentile(ordered, 0.5), "p99": percentile(ordered, 0.99)}
        if ordered
        else {},
        cpu_us_per_op={k: v / ops * 1e6 for k, v in cpu.by_role.most_common()} if ops else {},
        busy=cpu.busy / cpu.total if cpu.total else 0.0,
    )


def run_query_bench(
    *, partitions: int = 4, accounts: int = 2_000, threads: int = 4, window: int = 256,
    seconds: float = 10.0,
) -> list[Loop]:  # fmt: skip
    """The three loops in a fresh application (stopped at the end)."""
    bootstrap = ensure_broker()
    ensure_ray(NAMESPACE)
    settings = Settings.resolve(
        app_id=f"bench-queries-{uuid.uuid4().hex[:6]}",
        bootstrap_servers=bootstrap,
        partitions=partitions,
    )
    names = [f"q-{n:05d}" for n in range(accounts)]
    deploy_service(settings, timeout=300)
    try:
        with BankClient(settings, timeout=120) as client:
            opened = [client.send(a, OpenAccount("EUR")) for a in names]
            if not all(f.result(120).accepted for f in opened):
                raise RuntimeError("accounts could not be opened")
            return [
                _measure(name, client, names, threads=t, window=w, seconds=seconds)
                for name, t, w in (
                    ("queries alone", threads, 0),
                    ("commands alone", 0, window),
                    ("both at once", threads, window),
                )
            ]
    finally:
        stop_service(settings.app_id)


def print_query_bench(console: Console, loops: list[Loop], threads: int, window: int) -> None:
    table = Table(
        title=f"queries through Ray ({threads} threads) beside commands ({window} in flight)"
    )
    for column in ("loop", "queries/s", "query p50 / p99", "commands/s", "CPU µs per op"):
        table.add_column(column, justify="left" if column in ("loop", "CPU µs per op") else "right")
    for loop in loops:
        cpu = ", ".join(f"{k} {v:,.0f}" for k, v in loop.cpu_us_per_op.items() if v >= 1)
        q = loop.query_ms
        table.add_row(
            loop.name,
            f"{loop.queries_per_s:,.0f}",
            f"{q['p50']:.2f} / {q['p99']:.2f} ms" if q else "-",
            f"{loop.commands_per_s:,.0f}",
            f"{cpu}; machine {loop.busy:.0%} busy",
        )
    console.print(table)


def main(
    partitions: Annotated[int, typer.Option(help="Partitions (actors).")] = 4,
    accounts: Annotated[int, typer.Option(help="Accounts opened and queried.")] = 2_000,
    threads: Annotated[int, typer.Option(help="Query threads, each a closed loop.")] = 4,
    window: Annotated[int, typer.Option(help="Commands in flight.")] = 256,
    seconds: Annotated[float, typer.Option(help="Seconds per loop.")] = 10.0,
) -> None:
    """Query cost through Ray, alone and beside a command load."""
    loops = run_query_bench(
        partitions=partitions, accounts=accounts, threads=threads, window=window, seconds=seconds
    )
    print_query_bench(Console(), loops, threads, window)


if __name__ == "__main__":
    typer.run(main)
