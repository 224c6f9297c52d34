"""The cost of history queries: the ``history`` phase of ``python -m bench``, and
``python -m bench.history``.

Both write event records straight to the events topic of a one-partition application (the
real codec, a plain producer: committed, as the service's would be) rather than through
partition actors, which would take minutes for 100,000 commands of one account. What is
measured is the real read path: the partition's history actor indexes those records with
its own tail (events and waypoints), and every query goes through ``Reads`` and Ray to it,
like any client's.

- The phase (``run_history``): one account with ``SHORT`` events and one with
  ``config.history_events`` (100,000), interleaved. The same queries on both (the last page
  of 100, a page of 50 in the middle, ``state_at`` a version and a time in the middle),
  each ``repeat`` times, alternating the two accounts, every answer checked against the
  plan's balances; the p50 of each and long ÷ short, whose goal is at most 2: a page costs
  what its page holds, not the account's history. Then the same on a ``HistoryIndex`` in
  the bench's own process (its own tail and disk; no Ray, whose ~ms per call hides the fold).
- ``python -m bench.history``: ``--events`` event records for ``--accounts`` accounts, with
  one account's ``--account-events`` spread evenly among them. The index build on a new
  disk is timed, then that account's history (one page of all of it, and pages of 100) and
  its state at a time in the middle, each ``--repeat`` times. For scale, the fold of the
  same account by reading the whole partition (what a query costs without the index) is
  timed once.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import ray
import typer
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from actors.admin import ensure_topics
from actors.audit import read_events
from actors.history import (
    HistoryBehindError,
    HistoryIndex,
    deploy_history,
    history_actor,
    stop_history,
)
from actors.reads import Reads
from bench.kafkaio import producer_config
from bench.model import HistoryCost, RunContext
from eventledger.runtime import ensure_broker, ensure_ray
from ledger import LEDGER, AccountOpened, AccountView, Deposited
from topology.codec.aggregate import Codec
from topology.codec.keys import encode_key
from topology.history import ORIGIN, Elsewhere, HistoryPage, PointInTime, history_page
from topology.names import NAMESPACE
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["SHORT", "run_history"]

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)
console = Console()
TARGET = "the-account"
T0 = 1_700_000_000_000
SHORT = 100
"""Events of the phase's short account."""

Planned = tuple[str, int]  # (aggregate id, sequence) of each event, in log order
Figures = dict[str, tuple[float, float]]  # query → p50 ms (short, long)


def _amount(n: int) -> int:
    """The amount of the deposit at log position ``n``."""
    return 1 + n % 1_000


def _produce(bootstrap: str, topic: str, plan: Iterator[Planned]) -> int:
    """Write the planned events (an opening, then deposits of ``_amount``), at T0 + n ms;
    returns how many."""
    codec = Codec(LEDGER)
    producer = Producer(producer_config(bootstrap))
    n = -1
    for n, (aggregate, sequence) in enumerate(plan):
        event = AccountOpened("EUR", 0) if sequence == 1 else Deposited(_amount(n))
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
    return n + 1


def _spread(events: int, accounts: int, account_events: int) -> Iterator[Planned]:
    """``events`` events for ``accounts`` accounts, with ``TARGET``'s ``account_events``
    spread evenly among them."""
    every = events // account_events
    sequences = [0] * accounts
    target = 0
    for n in range(events):
        if n % every == 0 and target < account_events:
            target += 1
            yield TARGET, target
        else:
            i = n % accounts
            sequences[i] += 1
            yield f"acc-{i:07d}", sequences[i]


# -- the phase: a page of a long history against a page of a short one ----------------------


class Reader(Protocol):
    """What the phase asks: ``Reads`` (through Ray), or ``_InProcess`` (no Ray)."""

    def history(
        self, aggregate_id: str, *, after_version: int = 0, limit: int = 100
    ) -> HistoryPage[Any]: ...

    def state_at(self, aggregate_id: str, at: datetime | int) -> PointInTime[Any] | None: ...


class _InProcess:
    """A history index in this process, asked as ``Reads`` asks the history actor."""

    def __init__(self, index: HistoryIndex) -> None:
        self.index = index

    def history(
        self, aggregate_id: str, *, after_version: int = 0, limit: int = 100
    ) -> HistoryPage[Any]:
        return self.index.history(aggregate_id, after_version, limit)

    def state_at(self, aggregate_id: str, at: datetime | int) -> PointInTime[Any] | None:
        if isinstance(at, datetime):
            found = self.index.state_at(aggregate_id, at_ms=int(at.timestamp() * 1000))
        else:
            found = self.index.state_at(aggregate_id, version=at)
        if isinstance(found, Elsewhere):
            raise AssertionError(f"{aggregate_id!r} moved, but nothing repartitions the bench")
        return found


Query = Callable[[Reader, str, int], None]
Expected = dict[str, list[tuple[int, int]]]  # account → (balance, time ms) after each event


def _queries(expected: Expected) -> dict[str, Query]:
    """The measured queries on an account of ``n`` events, each checking its answer against
    what the plan says."""

    def balances(account: str, first: int, last: int) -> list[int]:
        return [balance for balance, _ in expected[account][first - 1 : last]]

    def last_page(reads: Reader, account: str, n: int) -> None:
        page = reads.history(account, after_version=n - 100, limit=100)
        assert [e.sequence for e in page.entries] == list(range(n - 99, n + 1))
        assert [e.view.balance for e in page.entries] == balances(account, n - 99, n)

    def middle_page(reads: Reader, account: str, n: int) -> None:
        page = reads.history(account, after_version=n // 2 - 25, limit=50)
        assert [e.sequence for e in page.entries] == list(range(n // 2 - 24, n // 2 + 26))
        assert [e.view.balance for e in page.entries] == balances(account, n // 2 - 24, n // 2 + 25)

    def at_version(reads: Reader, account: str, n: int) -> None:
        point = reads.state_at(account, n // 2)
        assert point is not None and point.view.balance == expected[account][n // 2 - 1][0]

    def at_time(reads: Reader, account: str, n: int) -> None:
        balance, at_ms = expected[account][n // 2 - 1]
        point = reads.state_at(account, datetime.fromtimestamp(at_ms / 1000, UTC))
        assert point is not None and point.version == n // 2 and point.view.balance == balance

    return {
        "last page of 100": last_page,
        "a page of 50 in the middle": middle_page,
        "state_at a version in the middle": at_version,
        "state_at a time in the middle": at_time,
    }


def _interleaved(long: int) -> Iterator[Planned]:
    """``long`` events of account "long" with the ``SHORT`` of account "short" spread among
    them."""
    every = long // SHORT
    short = 0
    for n in range(1, long + 1):
        yield "long", n
        if n % every == 0 and short < SHORT:
            short += 1
            yield "short", short


def _expected(long: int) -> Expected:
    """Each account's balance and time after each of its events, from the plan: the deposit
    at log position n is ``_amount(n)``, at T0 + n ms."""
    found: Expected = {"long": [], "short": []}
    for n, (account, sequence) in enumerate(_interleaved(long)):
        before = found[account][-1][0] if found[account] else 0
        found[account].append((0 if sequence == 1 else before + _amount(n), T0 + n))
    return found


def _indexed(reader: Reader, aggregate_id: str, last: int, limit_s: float = 600.0) -> float:
    """Wait until the index has the aggregate's event ``last`` (each query waits up to 15 s
    for the index to catch up, then raises); the seconds that took."""
    started = time.monotonic()
    while True:
        try:
            if reader.history(aggregate_id, after_version=last - 1, limit=1).entries:
                return time.monotonic() - started
        except HistoryBehindError:
            pass
        if time.monotonic() - started > limit_s:
            raise RuntimeError(f"the history index did not catch up in {limit_s:.0f} s")


def _p50s(reader: Reader, queries: dict[str, Query], long: int, repeat: int) -> Figures:
    """Each query ``repeat`` times on both accounts, alternating which goes first: the p50s,
    (short, long), in ms."""
    sizes = {"short": SHORT, "long": long}
    samples: dict[str, dict[str, list[float]]] = {q: {"short": [], "long": []} for q in queries}
    for r in range(repeat):
        for name, query in queries.items():
            for account in ("short", "long") if r % 2 else ("long", "short"):
                started = time.perf_counter()
                query(reader, account, sizes[account])
                samples[name][account].append(time.perf_counter() - started)
    return {name: (_p50_ms(by["short"]), _p50_ms(by["long"])) for name, by in samples.items()}


def run_history(ctx: RunContext) -> HistoryCost:
    """The ``history`` phase (see the module's docstring)."""
    long, repeat = ctx.config.history_events, 20 if ctx.config.quick else 50
    settings = Settings.resolve(
        app_id=f"{ctx.prefix}-history", bootstrap_servers=ctx.bootstrap, partitions=1
    )
    ensure_topics(ctx.bootstrap, TopicLayout.of(settings))
    topic = TopicLayout.of(settings).name(TopicKind.EVENTS)
    with ctx.console.status(f"history: writing {long + SHORT:,} events"):
        written = _produce(ctx.bootstrap, topic, _interleaved(long))
    queries = _queries(_expected(long))
    deploy_history(settings, LEDGER)
    try:
        with Reads(settings, AccountView) as reads:
            with ctx.console.status(f"history: the actor indexing {written:,} events"):
                build = _indexed(reads, "long", long)
            through_ray = _p50s(reads, queries, long, repeat)
    finally:
        stop_history(settings.app_id)
    local = replace(settings, state_dir=tempfile.mkdtemp(prefix="bench-history-"))
    index = HistoryIndex(local, 0, LEDGER)
    try:
        with ctx.console.status(f"history: an index in this process indexing {written:,} events"):
            _indexed(_InProcess(index), "long", long)
        in_process = _p50s(_InProcess(index), queries, long, repeat)
    finally:
        index.stop()
        shutil.rmtree(local.state_dir, ignore_errors=True)
        shutil.rmtree(Path(settings.state_dir).expanduser() / settings.app_id, ignore_errors=True)
    return HistoryCost(
        short=SHORT,
        long=long,
        repeat=repeat,
        p50_ms=through_ray,
        in_process_p50_ms=in_process,
        facts={
            "events written": written,
            "index build on a new disk (s)": build,
            "the last page of 100 folded from the first event, in process (ms)": _full_fold(long),
        },
    )


def _p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _full_fold(long: int) -> float:
    """What the last page cost before waypoints, without Ray: its fold from the first event
    of the long account (the same records, folded in this process), in ms."""
    codec = Codec(LEDGER)
    records = [
        codec.events.encode(
            account, sequence, AccountOpened("EUR", 0) if sequence == 1 else Deposited(_amount(n)),
            command_id=f"c{n}", timestamp_ms=T0 + n,
        )
        for n, (account, sequence) in enumerate(_interleaved(long))
        if account == "long"
    ]  # fmt: skip
    started = time.perf_counter()
    page = history_page(codec, "long", records, long - 100, 100, start=ORIGIN)
    assert len(page.entries) == 100
    return (time.perf_counter() - started) * 1000


# -- python -m bench.history: one account among a large partition -----------------------------


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
    topic = TopicLayout.of(settings).name(TopicKind.EVENTS)
    _produce(bootstrap, topic, _spread(events, accounts, account_events))
    console.print(f"wrote {events:,} events in {time.monotonic() - started:.1f} s")
    ensure_ray(NAMESPACE)
    rows: list[tuple[str, str]] = []
    try:
        started = time.monotonic()
        deploy_history(settings, LEDGER)
        index = history_actor(settings.app_id, 0)
        with Reads(settings, AccountView) as reads:
            _indexed(reads, TARGET, account_events)
            build = time.monotonic() - started
            rows.append(
                ("index build on a new disk", f"{build:.1f} s, {events / build:,.0f} events/s")
            )
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
