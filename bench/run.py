"""One benchmark run, phase by phase: throughput (each system on its own copy of one source
topic), latency, restore, history, failover; then the checks' verdict, the table, the JSON and the
summary."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from bench.check import CheckFailedError
from bench.config import BenchConfig, Phase, SystemName
from bench.kafkaio import delete_run
from bench.machine import machine, versions
from bench.model import Failover, RunContext, RunResults
from bench.procs import REPO
from bench.report import build_rows, print_table, results_json, write_json, write_markdown
from eventledger.workload import Workload

__all__ = ["LATEST_MD", "METHOD", "RESULTS", "run_bench"]

log = logging.getLogger(__name__)

RESULTS = REPO / "bench" / "results"
LATEST_MD = RESULTS / "latest.md"

METHOD = """## Method

- Input: the seeded workload (N `OpenAccount`, then M deposits and withdrawals, some refused)
  is encoded once with the project's codec (`encode_command`, `reply_to` = reply lane 0),
  keyed by account id with our partitioner, into a source topic. Each system gets its own
  copy, record for record (same partition, same offsets, same bytes), written in one
  Kafka transaction that is committed only once the system is up (actors restored, Quix group
  stable, raw-pipe workers connected), so every system starts on its whole input at once.
- Throughput: commands / (first consumed → last committed, i.e. visible under read_committed).
  eventledger: its actors' `first_batch_at` → `last_commit_at` once every `committed_offset`
  reached its partition's end. Quix Streams: its first processed message → the moment its
  group's committed offsets (committed inside its transactions) reached the ends, polled every
  50 ms. Raw pipe: first consume → last flush (every record acknowledged).
- Checks before a time counts: replies (one per command, no duplicates, accepted / refused by
  code as the domain's own fold of the workload says) and events (one per accepted command,
  folding with `evolve` to the expected balance of every account; Σ balances = accepted
  deposits − withdrawals; equal to eventledger's). eventledger's actor views must agree too.
  The raw pipe computes nothing: its output record counts are checked.
- Latency: one `LedgerClient`, open loop at a fixed rate after a warm-up, each round trip
  from its scheduled send time to its reply.
- Kafka Streams 4.1.1 (`bench/kstreams`, the seed article's topology in Java): command →
  validate against a RocksDB state store → reply, event and public state in one
  transaction, `exactly_once_v2`, `commit.interval.ms` 100, 2 stream threads, eventledger's
  record formats; its outputs are checked exactly as eventledger's. Throughput as Quix's
  (first processed → group's committed offsets at the ends); latency as eventledger's,
  through a client with `LedgerClient`'s Kafka configs.
- e2e: sender processes (not threads: no shared GIL), each keeping a window of commands in
  flight (closed loop) through its client (`LedgerClient` for eventledger), at 1 × 256 and
  8 × 32; throughput = replies / (first send → last reply); round trips from the send call;
  broker CPU = the broker JVM's user + system CPU (psutil) across the setting, per command.
  Broker requests per command are not measured (JMX or request logs cost the broker more
  than they tell here). Beside them the raw echo: one process consumes the commands and
  produces each one's bytes back to its reply lane, no transactions, no state, the same
  client library and configs. Ledger outputs are checked as above; the echo's reply count.
- Restore: see `bench/restore.py` (snapshots written with the real codec and a plain producer;
  Quix recovers its RocksDB store from a changelog its own application wrote).
- History: see `bench/history.py` (eventledger only: one account of 100 events and one of
  100,000, written with the real codec and a plain producer, indexed by the partition's
  history actor; the same queries on both through `Reads` and Ray; p50 of each and
  long ÷ short).
- HTTP: see `bench/http_phase.py` (eventledger only: the HTTP echo limit, then each serving
  mode in a process with its own local Ray, one service; closed loops at `http_inflight` in
  flight of the client's `execute_async`, HTTP POST deposits, HTTP GETs; the client alone,
  beside `http_get_rate` GETs/s (open loop, from another process) and beside a closed loop
  of GETs, alternated; open loops at `http_rate`/s of the client and HTTP POST,
  alternated; ratios within the mode's process, money checked per mode).
- Failover: see `bench/failover.py` (eventledger only, twice: `standbys` 0, then 1; each a
  partition of `failover_keys` accounts and `failover_ids` remembered ids, deposits at
  `failover_rate`/s open loop, SIGKILL of its writer's process once a standby has caught
  up; Ray restarts the writer in place, or the standby takes over. Per variant the answer
  gap (the longest silence between replies, from the last before the kill to the first
  after the recorded writer answers RUNNING from another process), the restart's restore
  times or the takeover's steps, and the gap with a standby ÷ without; every deposit
  answered, accepted and in its account's balance).
- Repartition: see `bench/repartition.py` (eventledger only; `repartition_keys` accounts
  seeded on `repartition_from` partitions, deposits at `repartition_rate`/s open loop, the
  coordinator's repartition to `repartition_to`: the switch's time, moves, accounts moved
  per second, each leg's pause, the deposits' latency before and during it; every account
  held once, money conserved; Kafka Streams cannot grow a running application)."""

_THROUGHPUT_ORDER = (
    SystemName.EVENTLEDGER,
    SystemName.QUIX,
    SystemName.KSTREAMS,
    SystemName.RAWPIPE,
)


def run_bench(
    config: BenchConfig, console: Console | None = None, command: str = "bench.run.run_bench()"
) -> dict[str, Any]:
    """Run every selected phase; print the table, write the JSON (and ``latest.md`` for a
    complete full-size run). Returns the JSON document; ``document["passed"]`` is False when
    a check failed or a phase broke (details in ``document["failures"]``)."""
    from eventledger.runtime import ensure_broker

    console = console or Console()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    out = config.out or RESULTS / f"{run_id}.json"
    bootstrap = config.bootstrap or ensure_broker()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    ctx = RunContext(config, bootstrap, run_id, console, progress, out.parent / "logs" / run_id)
    document: dict[str, Any] = {
        "run_id": run_id,
        "started": started,
        "command": command,
        "config": asdict(config),
        "machine": machine(),
        "versions": versions(external_broker="KAFKA_BOOTSTRAP_SERVERS" in os.environ),
        "method": METHOD,
    }
    results = RunResults()
    ray_started = _start_ray(config)
    try:
        with progress:
            document["expected"] = _phases(ctx, results)
    finally:
        if not config.keep_topics:
            deleted = delete_run(bootstrap, run_id)
            log.info("deleted %d topics of run %s", len(deleted), run_id)
        if ray_started:
            import ray

            ray.shutdown()
    quix = results.throughput.get("quix")
    if quix is not None:
        document["versions"].update(quix.config.get("versions", {}))
    document.update(results_json(results))
    document["passed"] = results.passed
    rows = build_rows(results)
    title = (
        f"eventledger benchmark · {config.accounts:,} accounts · {config.commands:,} commands · "
        f"{config.partitions} partitions{' · quick' if config.quick else ''}"
    )
    print_table(console, rows, title)
    write_json(out, document)
    console.print(f"results: {out}")
    markdown = config.markdown or (LATEST_MD if config.complete else None)
    if markdown is not None:
        write_markdown(markdown, document, rows)
        console.print(f"summary: {markdown}")
    for what, why in results.failures.items():
        console.print(f"[bold red]{what} failed:[/] {why}")
    return document


def _start_ray(config: BenchConfig) -> bool:
    """Start (or join) Ray when eventledger runs; True if this run started it."""
    if not config.runs(SystemName.EVENTLEDGER):
        return False
    import ray

    from eventledger.runtime import ensure_ray
    from topology.names import NAMESPACE

    if ray.is_initialized():
        return False
    ensure_ray(NAMESPACE)
    return True


def _phases(ctx: RunContext, results: RunResults) -> dict[str, Any]:
    from bench.latency import run_latency
    from bench.restore import run_eventledger_restore, run_quix_restore
    from bench.systems.eventledger import run_eventledger
    from bench.systems.kstreams import run_kstreams
    from bench.systems.quix import run_quix
    from bench.systems.rawpipe import run_rawpipe
    from bench.workload import produce_source

    cfg = ctx.config
    expected_summary: dict[str, Any] = {}
    if cfg.does(Phase.THROUGHPUT):
        workload = Workload(accounts=cfg.accounts, commands=cfg.commands, seed=cfg.seed)
        source = f"{ctx.prefix}.source"
        expected = produce_source(ctx.bootstrap, source, workload, cfg.partitions, ctx.progress)
        expected_summary = expected.summary()
        reference: dict[str, int] | None = None
        for system in _THROUGHPUT_ORDER:
            if not cfg.runs(system):
                continue
            ctx.progress.console.rule(f"throughput: {system}")

            def attempt(system: SystemName = system) -> None:
                nonlocal reference
                if system is SystemName.EVENTLEDGER:
                    result, check = run_eventledger(ctx, source, expected)
                    if check.passed:
                        reference = check.balances
                elif system is SystemName.QUIX:
                    result, check = run_quix(ctx, source, expected, reference)
                elif system is SystemName.KSTREAMS:
                    result, check = run_kstreams(ctx, source, expected, reference)
                else:
                    result, check = run_rawpipe(ctx, source)
                results.throughput[system] = result
                check.raise_if_failed()

            _guard(results, f"throughput:{system}", attempt)
    if cfg.does(Phase.LATENCY) and cfg.runs(SystemName.EVENTLEDGER):
        ctx.progress.console.rule("latency: eventledger")

        def latency() -> None:
            results.latency = run_latency(ctx)

        _guard(results, "latency", latency)
    _peer_phases(ctx, results)
    if cfg.does(Phase.RESTORE):
        for system, restore in (
            (SystemName.EVENTLEDGER, run_eventledger_restore),
            (SystemName.QUIX, run_quix_restore),
        ):
            if not cfg.runs(system):
                continue
            ctx.progress.console.rule(f"restore: {system}")

            def attempt_restore(system: SystemName = system, restore: Any = restore) -> None:
                results.restore[system] = restore(ctx)

            _guard(results, f"restore:{system}", attempt_restore)
    _history_phase(ctx, results)
    _failover_phase(ctx, results)
    _http_phase(ctx, results)
    _repartition_phase(ctx, results)
    return expected_summary


def _history_phase(ctx: RunContext, results: RunResults) -> None:
    """A history page of a long account against one of a short account (eventledger's)."""
    from bench.history import run_history

    if not (ctx.config.does(Phase.HISTORY) and ctx.config.runs(SystemName.EVENTLEDGER)):
        return
    ctx.progress.console.rule("history: eventledger")

    def history() -> None:
        results.history = run_history(ctx)

    _guard(results, "history", history)


def _failover_phase(ctx: RunContext, results: RunResults) -> None:
    """A partition's writer killed under load, without and then with a standby
    (eventledger's); a variant that fails is recorded as ``failover:standbys=N``."""
    from bench.failover import run_failover

    cfg = ctx.config
    if not (cfg.does(Phase.FAILOVER) and cfg.runs(SystemName.EVENTLEDGER)):
        return
    failover = Failover(keys=cfg.failover_keys, ids=cfg.failover_ids, rate=cfg.failover_rate)
    results.failover = failover
    for standbys in (0, 1):
        ctx.progress.console.rule(f"failover: eventledger, standbys={standbys}")

        def attempt(standbys: int = standbys) -> None:
            failover.runs.append(run_failover(ctx, standbys))

        _guard(results, f"failover:standbys={standbys}", attempt)


def _repartition_phase(ctx: RunContext, results: RunResults) -> None:
    """An application grown online under load (eventledger's; no peer can)."""
    from bench.repartition import run_repartition

    cfg = ctx.config
    if not (cfg.does(Phase.REPARTITION) and cfg.runs(SystemName.EVENTLEDGER)):
        return
    ctx.progress.console.rule(f"repartition: eventledger, {cfg.repartition_keys:,} accounts")

    def repartition() -> None:
        results.repartition = run_repartition(ctx)

    _guard(results, "repartition", repartition)


def _http_phase(ctx: RunContext, results: RunResults) -> None:
    """The HTTP API in each serving mode beside the client, and the HTTP echo limit."""
    from bench.http_phase import run_http

    if not (ctx.config.does(Phase.HTTP) and ctx.config.runs(SystemName.EVENTLEDGER)):
        return
    ctx.progress.console.rule("http: eventledger")

    def guard(what: str, step: Callable[[], None]) -> None:
        _guard(results, what, step)

    results.http = run_http(ctx, guard)


def _peer_phases(ctx: RunContext, results: RunResults) -> None:
    """The raw echo's and Kafka Streams' latency, and the e2e phase (with the raw echo beside
    the systems)."""
    from bench.e2e import run_e2e
    from bench.latency import run_echo_latency, run_kstreams_latency

    cfg = ctx.config
    if cfg.does(Phase.LATENCY):
        ctx.progress.console.rule("latency: echo")

        def echo_latency() -> None:
            results.peer_latency["echo"] = run_echo_latency(ctx)

        _guard(results, "latency:echo", echo_latency)
    if cfg.does(Phase.LATENCY) and cfg.runs(SystemName.KSTREAMS):
        ctx.progress.console.rule("latency: kstreams")

        def kstreams_latency() -> None:
            results.peer_latency["kstreams"] = run_kstreams_latency(ctx)

        _guard(results, "latency:kstreams", kstreams_latency)
    if cfg.does(Phase.E2E):
        e2e_systems = [s for s in ("eventledger", "kstreams") if cfg.runs(SystemName(s))]
        e2e_systems.insert(1 if cfg.runs(SystemName.EVENTLEDGER) else 0, "echo")

        def guard(what: str, step: Callable[[], None]) -> None:
            _guard(results, what, step)

        results.e2e = run_e2e(ctx, e2e_systems, guard)


def _guard(results: RunResults, what: str, step: Callable[[], None]) -> None:
    """Run one phase; a failed check or a crash is recorded (the run goes on) and its figure
    is withdrawn, so it cannot count."""
    try:
        step()
    except CheckFailedError as e:
        log.error("%s: %s", what, e)
        results.failures[what] = str(e)
        phase, _, system = what.partition(":")
        if phase == "throughput":
            results.throughput.pop(system, None)
    except Exception as e:
        log.exception("%s broke", what)
        results.failures[what] = f"{type(e).__name__}: {e}"
