"""``python -m bench.history``: the cost of one account's history in a large partition.

A one-partition application's events topic gets ``--events`` event records (the real
codec, written with a plain producer: committed, as the service's would be) for
``--accounts`` accounts, with one account's ``--account-events`` spread evenly among them.
Then the partition's history actor indexes them (timed: the index build on a new disk), and
the client asks for that account's history (one page of all of it, and pages of 100) and
its state at a time in the middle, each ``--repeat`` times, through Ray like any client.
For scale, the fold of the same account by reading the whole partition (what a query costs
without the index) is timed once.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

import ray
import typer
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from actors.admin import ensure_topics
from actors.audit import read_events
from actors.history import deploy_history, history_actor, stop_history
from actors.reads import Reads
from bench.kafkaio import producer_config
from eventledger.runtime import ensure_broker, ensure_ray
from ledger import LEDGER, AccountOpened, AccountView, Deposited
from topology.codec.aggregate import Codec
from topology.codec.keys import encode_key
from topology.names import NAMESPACE
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)
console = Console()
TARGET = "the-account"
T0 = 1_700_000_000_000


def _write(settings: Settings, events: int, accounts: int, account_events: int) -> None:
    codec = Codec(LEDGER)
    topic = TopicLayout.of(settings).name(TopicKind.EVENTS)
    producer = Producer(producer_config(settings.bootstrap_servers))
    every = events // account_events
    sequences = [0] * accounts
    target = 0
    for n in range(events):
        if n % every == 0 and target < account_events:
            aggregate, target = TARGET, target + 1
            sequence = target
        else:
            i = n % accounts
            aggregate = f"acc-{i:07d}"
            sequences[i] += 1
            sequence = sequences[i]
        event = AccountOpened("EUR", 0) if sequence == 1 else Deposited(1 + n % 1_000)
        value = codec.events.encode(
            aggregate, sequence, event, command_id=f"c{n}", timestamp_ms=T0 + n
        )
        while True:
            try:
                producer.produce(topic, value, encode_key(aggregate), 0)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 50_000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise RuntimeError("events not all delivered")


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"{statistics.median(ordered) * 1000:.1f} / {p99 * 1000:.1f}"


def _measure(reads: Reads[AccountView], account_events: int, repeat: int) -> list[tuple[str, str]]:
    """The account's whole history, its pages of 100 and its state at a time in the middle,
    each ``repeat`` times; checked against each other and the sum of the moves."""
    full: list[float] = []
    paged: list[float] = []
    at: list[float] = []
    for _ in range(repeat):
        t = time.perf_counter()
        whole = reads.history(TARGET, limit=1_000)
        full.append(time.perf_counter() - t)
        assert len(whole.entries) == account_events
        t, after, seen = time.perf_counter(), 0, 0
        while True:
            part = reads.history(TARGET, after_version=after, limit=100)
            seen += len(part.entries)
            if part.next_after is None:
                break
            after = part.next_after
        paged.append(time.perf_counter() - t)
        assert seen == account_events
        middle = whole.entries[account_events // 2]
        t = time.perf_counter()
        point = reads.state_at(TARGET, datetime.fromtimestamp(middle.timestamp_ms / 1000, UTC))
        at.append(time.perf_counter() - t)
        assert point is not None and point.version == middle.sequence
        assert point.view.balance == middle.view.balance
    total = sum(e.event.amount for e in whole.entries[1:])
    assert whole.entries[-1].view.balance == total  # money: the fold is the sum
    return [
        (f"history, 1 page of {account_events:,} (p50 / p99 ms)", _ms(full)),
        (f"history, {account_events // 100} pages of 100 (p50 / p99 ms)", _ms(paged)),
        ("state_at a time in the middle (p50 / p99 ms)", _ms(at)),
    ]


@app.command()
def main(
    events: Annotated[int, typer.Option(help="Events in the partition.")] = 1_000_000,
    accounts: Annotated[int, typer.Option(help="Other accounts.")] = 10_000,
    account_events: Annotated[int, typer.Option(help="The measured account's events.")] = 1_000,
    repeat: Annotated[int, typer.Option(help="Times each query is asked.")] = 20,
) -> None:
    bootstrap = ensure_broker()
    settings = Settings.resolve(
        app_id=f"bench-history-{uuid.uuid4().hex[:6]}", bootstrap_servers=bootstrap, partitions=1
    )
    ensure_topics(bootstrap, TopicLayout.of(settings))
    started = time.monotonic()
    _write(settings, events, accounts, account_events)
    console.print(f"wrote {events:,} events in {time.monotonic() - started:.1f} s")
    ensure_ray(NAMESPACE)
    rows: list[tuple[str, str]] = []
    try:
        started = time.monotonic()
        deploy_history(settings, LEDGER)
        index = history_actor(settings.app_id, 0)
        reads = Reads(settings, AccountView)
        page = reads.history(TARGET, limit=1, timeout=600)  # waits for the index
        build = time.monotonic() - started
        rows.append(("index build on a new disk", f"{build:.1f} s, {events / build:,.0f} events/s"))
        assert page.entries[0].sequence == 1

        rows += _measure(reads, account_events, repeat)
        t = time.perf_counter()
        scanned = [e for e in read_events(settings, LEDGER) if e.envelope.aggregate_id == TARGET]
        rows.append(
            (
                "without the index: read the partition, keep one account",
                f"{time.perf_counter() - t:.1f} s",
            )
        )
        assert len(scanned) == account_events
        ray.get(index.position.remote())
    finally:
        stop_history(settings.app_id)
    table = Table(title=f"history: {account_events:,} events of one account among {events:,}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    app()
