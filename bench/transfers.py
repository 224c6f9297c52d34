"""``python -m bench.transfers``: what a transfer costs, on the local broker and Ray.

Four partition actors (bare, no coordinator), funded accounts, then:

- **throughput** (closed loop, ``window`` in flight): deposits, then transfers whose two
  accounts share a partition (one transaction: debit, credit and reply), then transfers
  across partitions (two transactions, the credit through ``{app}.internal``);
- **round trip** (open loop at ``rate``/s, from each scheduled send to its final reply):
  the same three, one after the other; the cross-partition hop's cost is the difference
  between the cross- and the same-partition percentiles.

At the end the money is checked (``ledger.money``): nothing in flight, every transfer
debited once and credited once, the actors' balances = the deposits.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Annotated, Any

import ray
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from actors.audit import read_events
from actors.deployment import stop_service
from actors.ray_state import partition_actors
from bench.latency import open_loop, percentile
from eventledger.assembly import AGGREGATE, deploy_service
from eventledger.bank import BankClient
from eventledger.runtime import ensure_broker, ensure_ray
from ledger.commands import Deposit, OpenAccount, Transfer
from ledger.money import Money
from topology.envelopes import Reply
from topology.names import NAMESPACE
from topology.partitioner import partition_for
from topology.settings import Settings

__all__ = ["TransferBench", "main", "print_transfer_bench", "run_transfer_bench"]

log = logging.getLogger(__name__)

_FUNDS = 10**12
_KINDS = ("deposit", "same partition", "cross partition")


@dataclass
class TransferBench:
    """What was measured: per kind, commands/s (closed loop) and round-trip percentiles
    (open loop, ms), and the money check."""

    partitions: int
    window: int
    rate: float
    throughput: dict[str, float] = field(default_factory=dict)
    round_trip: dict[str, dict[str, float]] = field(default_factory=dict)
    refused: int = 0
    in_flight: int = 0
    broken_transfers: int = 0
    balances: int = 0
    deposited: int = 0

    @property
    def money_ok(self) -> bool:
        return (
            self.in_flight == 0
            and self.broken_transfers == 0
            and self.balances == self.deposited
            and self.refused == 0
        )


def _accounts(partitions: int, per_partition: int) -> dict[int, list[str]]:
    by_partition: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for n in itertools.count():
        if all(len(v) >= per_partition for v in by_partition.values()):
            return by_partition
        name = f"tb-{n:06d}"
        owned = by_partition[partition_for(name.encode(), partitions)]
        if len(owned) < per_partition:
            owned.append(name)
    raise AssertionError("unreachable")


def _commands(
    kind: str, by_partition: dict[int, list[str]], seed: int
) -> Iterator[tuple[str, Any]]:
    """An endless stream of commands of ``kind`` (amounts of 1: funds never run out)."""
    rng = random.Random(seed)
    partitions = sorted(by_partition)
    while True:
        p = rng.choice(partitions)
        source = rng.choice(by_partition[p])
        if kind == "deposit":
            yield source, Deposit(1)
            continue
        q = p if kind == "same partition" else rng.choice([x for x in partitions if x != p])
        target = rng.choice([a for a in by_partition[q] if a != source])
        yield source, Transfer(target, 1)


def _closed_loop(
    client: BankClient, commands: Iterator[tuple[str, Any]], count: int, window: int
) -> tuple[float, int]:
    """Send ``count`` commands with ``window`` in flight; (commands/s, refused)."""
    slots = threading.Semaphore(window)
    futures: list[Future[Reply]] = []
    started = time.perf_counter()
    for _ in range(count):
        account, command = next(commands)
        slots.acquire()
        future = client.send(account, command)
        future.add_done_callback(lambda _f: slots.release())
        futures.append(future)
    replies = [f.result(120) for f in futures]
    seconds = time.perf_counter() - started
    return count / seconds, sum(1 for r in replies if not r.accepted)


def run_transfer_bench(
    *,
    partitions: int = 4,
    per_partition: int = 100,
    count: int = 20_000,
    window: int = 256,
    rate: float = 1_000.0,
    seconds: float = 20.0,
    seed: int = 3,
    progress: Progress | None = None,
) -> TransferBench:
    """Run the transfer bench in a fresh application and return what it measured."""
    bootstrap = ensure_broker()
    ensure_ray(NAMESPACE)
    settings = Settings.resolve(
        app_id=f"bench-transfers-{uuid.uuid4().hex[:6]}",
        bootstrap_servers=bootstrap,
        partitions=partitions,
    )
    result = TransferBench(partitions, window, rate)
    by_partition = _accounts(partitions, per_partition)
    accounts = [a for owned in by_partition.values() for a in owned]
    progress = progress or Progress(transient=True)
    deploy_service(settings, timeout=300)
    try:
        handles = partition_actors(settings.app_id, settings.partitions)
        with BankClient(settings, timeout=120) as client, progress:
            for account in accounts:
                client.send(account, OpenAccount("EUR"))
            funded = [client.send(a, Deposit(_FUNDS)) for a in accounts]
            result.refused += sum(1 for f in funded if not f.result(120).accepted)
            for i, kind in enumerate(_KINDS):
                commands = _commands(kind, by_partition, seed + i)
                per_second, refused = _closed_loop(client, commands, count, window)
                result.throughput[kind] = per_second
                result.refused += refused
            for i, kind in enumerate(_KINDS):
                commands = _commands(kind, by_partition, seed + 10 + i)
                sent = round(rate * seconds)
                warmup = round(rate)
                open_loop(
                    progress, client, commands, rate=rate, count=warmup, label=f"{kind} warm-up"
                )
                latencies, _, _ = open_loop(
                    progress,
                    client,
                    commands,
                    rate=rate,
                    count=sent,
                    label=f"{kind} at {rate:,.0f}/s",
                )
                ordered = sorted(latencies)
                result.round_trip[kind] = {
                    "p50": percentile(ordered, 0.5),
                    "p90": percentile(ordered, 0.9),
                    "p99": percentile(ordered, 0.99),
                    "answered": len(ordered),
                    "sent": sent,
                }
        money = _quiet(settings)
        views: dict[str, Any] = {}
        for part in ray.get([h.views.remote() for h in handles], timeout=60):
            views.update(part)
    finally:
        stop_service(settings.app_id)
    result.in_flight = money.in_flight
    result.broken_transfers = len(money.broken_transfers())
    result.balances = sum(v.balance for v in views.values())
    result.deposited = money.expected_total
    return result


def _quiet(settings: Settings, timeout: float = 60.0) -> Money:
    deadline = time.monotonic() + timeout
    while True:
        money = Money()
        money.add(e.event for e in read_events(settings, AGGREGATE))
        if money.in_flight == 0 or time.monotonic() > deadline:
            return money
        time.sleep(0.5)


def print_transfer_bench(console: Console, r: TransferBench) -> None:
    table = Table(title=f"transfers · {r.partitions} partitions")
    table.add_column("")
    for kind in _KINDS:
        table.add_column(kind, justify="right")
    table.add_row(
        f"commands/s ({r.window} in flight)", *(f"{r.throughput[k]:,.0f}" for k in _KINDS)
    )
    for q in ("p50", "p90", "p99"):
        table.add_row(
            f"round trip {q} at {r.rate:,.0f}/s", *(f"{r.round_trip[k][q]:.1f} ms" for k in _KINDS)
        )
    table.add_row(
        "answered / sent",
        *(f"{r.round_trip[k]['answered']:,.0f} / {r.round_trip[k]['sent']:,.0f}" for k in _KINDS),
    )
    console.print(table)
    same, cross = r.round_trip["same partition"], r.round_trip["cross partition"]
    console.print(
        f"the cross-partition hop: +{cross['p50'] - same['p50']:.1f} ms at p50, "
        f"+{cross['p99'] - same['p99']:.1f} ms at p99"
    )
    verdict = "[bold green]money conserved[/]" if r.money_ok else "[bold red]MONEY CHECK FAILED[/]"
    console.print(
        f"{verdict}: in flight {r.in_flight}, broken transfers {r.broken_transfers}, "
        f"Σ balances {r.balances:,} = deposits {r.deposited:,}, refused {r.refused}"
    )


def main(
    partitions: Annotated[int, typer.Option(help="Partitions (actors).")] = 4,
    count: Annotated[int, typer.Option(help="Commands per kind, closed loop.")] = 20_000,
    window: Annotated[int, typer.Option(help="Commands in flight, closed loop.")] = 256,
    rate: Annotated[float, typer.Option(help="Commands/s, open loop.")] = 1_000.0,
    seconds: Annotated[float, typer.Option(help="Seconds per kind, open loop.")] = 20.0,
) -> None:
    """Transfer throughput and round trip beside a deposit's; exits 1 if money is not
    conserved."""
    result = run_transfer_bench(
        partitions=partitions, count=count, window=window, rate=rate, seconds=seconds
    )
    print_transfer_bench(Console(), result)
    raise typer.Exit(0 if result.money_ok else 1)


if __name__ == "__main__":
    typer.run(main)
