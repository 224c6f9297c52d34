"""``python -m bench``: eventledger beside Quix Streams, Kafka Streams and a raw pipe, on one
broker.

Defaults are issue 4's full run; ``--quick`` is the smoke-test size. Exits 1 when a system's
output failed its checks or a phase broke (the table says which).
"""

from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bench.config import QUICK, BenchConfig, Phase, SystemName
from bench.run import run_bench

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def _split(text: str, allowed: set[str]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise typer.BadParameter(f"{unknown or text!r}: choose from {', '.join(sorted(allowed))}")
    return names


_SERVING = {
    "proxy",
    "direct",
    "haproxy",
    "uvicorn",
}  # eventledger.http.serving.Serving (not imported:
# it loads Ray Serve)


def _systems(text: str) -> tuple[SystemName, ...]:
    return tuple(SystemName(n) for n in _split(text, {m.value for m in SystemName}))


def _phases(text: str) -> tuple[Phase, ...]:
    return tuple(Phase(n) for n in _split(text, {m.value for m in Phase}))


@app.command()
def main(
    *,
    accounts: Annotated[int | None, typer.Option(help="Accounts opened (default 10,000).")] = None,
    commands: Annotated[
        int | None, typer.Option(help="Deposits and withdrawals after the openings (200,000).")
    ] = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions = actors (4).")] = None,
    quick: Annotated[
        bool,
        typer.Option(
            help="Smoke-test size: 300 / 3,000 / 2, short latency, 20k restore and failover."
        ),
    ] = False,
    rate: Annotated[float | None, typer.Option(help="Latency: commands/s (1,000).")] = None,
    duration: Annotated[float | None, typer.Option(help="Latency: seconds measured (30).")] = None,
    restore_keys: Annotated[
        int | None, typer.Option(help="Restore: accounts to restore (1,000,000).")
    ] = None,
    restore_ids: Annotated[
        int | None,
        typer.Option(help="Restore: remembered command ids beside the accounts (10,000,000)."),
    ] = None,
    systems: Annotated[
        str | None,
        typer.Option(help="Comma-separated subset of: eventledger,quix,kstreams,rawpipe."),
    ] = None,
    phases: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of: throughput,latency,restore,e2e,history,failover,"
            "http,repartition (e2e always runs the raw echo beside the selected ledger "
            "systems; history, failover, http and repartition are eventledger's only)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="JSON results path (bench/results/RUN.json).")
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            help="Also write the markdown summary here (a complete full run writes "
            "bench/results/latest.md by itself)."
        ),
    ] = None,
    quix_commit_interval: Annotated[
        float | None, typer.Option(help="Quix Streams commit_interval in seconds (1.0).")
    ] = None,
    quix_replicas: Annotated[
        int | None, typer.Option(help="Quix Streams processes (default: one per core).")
    ] = None,
    rawpipe_processes: Annotated[
        int | None, typer.Option(help="Raw-pipe processes (default: one per core).")
    ] = None,
    quix_views: Annotated[
        bool, typer.Option(help="Quix also publishes the account view, as eventledger does.")
    ] = True,
    e2e_commands: Annotated[
        int | None, typer.Option(help="e2e: commands per (clients × window) setting (20,000).")
    ] = None,
    history_events: Annotated[
        int | None, typer.Option(help="history: events of the long account (100,000).")
    ] = None,
    failover_keys: Annotated[
        int | None, typer.Option(help="failover: accounts of the killed partition (1,000,000).")
    ] = None,
    failover_ids: Annotated[
        int | None, typer.Option(help="failover: its remembered command ids (1,000,000).")
    ] = None,
    failover_rate: Annotated[
        float | None, typer.Option(help="failover: deposits/s across the kill (200).")
    ] = None,
    serving: Annotated[
        str | None,
        typer.Option(help="http: comma-separated serving modes (proxy,direct,haproxy,uvicorn)."),
    ] = None,
    http_seconds: Annotated[
        float | None, typer.Option(help="http: seconds of each closed and open loop (10).")
    ] = None,
    http_get_rate: Annotated[
        float | None,
        typer.Option(help="http: GETs/s of the open-loop read load beside the commands (350)."),
    ] = None,
    http_standbys: Annotated[
        int | None,
        typer.Option(help="http: standbys per partition (default: the service's, 0 on one node)."),
    ] = None,
    http_replicas: Annotated[
        int | None, typer.Option(help="http: API replicas in each mode (1).")
    ] = None,
    repartition_keys: Annotated[
        int | None, typer.Option(help="repartition: accounts of the grown app (1,000,000).")
    ] = None,
    repartition_rate: Annotated[
        float | None, typer.Option(help="repartition: deposits/s across the switch (200).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Workload seed (7).")] = None,
    keep_topics: Annotated[bool, typer.Option(help="Keep this run's topics.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    base = QUICK if quick else BenchConfig()
    given: dict[str, Any] = {
        "accounts": accounts,
        "commands": commands,
        "partitions": partitions,
        "rate": rate,
        "duration": duration,
        "restore_keys": restore_keys,
        "restore_ids": restore_ids,
        "systems": None if systems is None else _systems(systems),
        "phases": None if phases is None else _phases(phases),
        "out": out,
        "markdown": markdown,
        "quix_commit_interval": quix_commit_interval,
        "quix_replicas": quix_replicas,
        "rawpipe_processes": rawpipe_processes,
        "seed": seed,
        "e2e_commands": e2e_commands,
        "history_events": history_events,
        "failover_keys": failover_keys,
        "failover_ids": failover_ids,
        "failover_rate": failover_rate,
        "http_modes": None if serving is None else tuple(_split(serving, _SERVING)),
        "http_seconds": http_seconds,
        "http_open_seconds": http_seconds,
        "http_replicas": http_replicas,
        "http_get_rate": http_get_rate,
        "http_standbys": http_standbys,
        "repartition_keys": repartition_keys,
        "repartition_rate": repartition_rate,
    }
    known = {f.name for f in fields(BenchConfig)}
    overrides = {k: v for k, v in given.items() if v is not None and k in known}
    try:
        config = replace(base, quix_views=quix_views, keep_topics=keep_topics, **overrides)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    command = shlex.join(["python", "-m", "bench", *sys.argv[1:]])
    console = Console() if sys.stdout.isatty() else Console(width=160)
    document = run_bench(config, console, command=command)
    raise typer.Exit(code=0 if document["passed"] else 1)


if __name__ == "__main__":
    app()
