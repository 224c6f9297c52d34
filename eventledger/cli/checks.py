"""The checks: demo, torture (the fault suite) and simulate (the deterministic simulator)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from eventledger.broker import BrokerError
from eventledger.cli.common import console, fail
from eventledger.service import ServiceError

app = typer.Typer()


@app.command()
def demo(
    *,
    accounts: Annotated[int, typer.Option(help="Accounts to open.")] = 2_000,
    commands: Annotated[int, typer.Option(help="Deposits and withdrawals to send.")] = 20_000,
    partitions: Annotated[int, typer.Option(help="Kafka partitions = partition actors.")] = 4,
    window: Annotated[int, typer.Option(help="Commands in flight at most.")] = 256,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 7,
    http_deposits: Annotated[
        int, typer.Option(help="Deposits also sent through the HTTP API (0: none).")
    ] = 2_000,
    keep: Annotated[
        bool,
        typer.Option(help="Keep the service running (on a local Ray head) for status/rebuild."),
    ] = False,
) -> None:
    """Run the service on the local broker and Ray, drive a workload, check the money."""
    from eventledger.demo import run_demo
    from eventledger.report import print_demo

    try:
        report = run_demo(
            accounts=accounts,
            commands=commands,
            partitions=partitions,
            window=window,
            seed=seed,
            keep=keep,
            http_deposits=http_deposits,
        )
    except (BrokerError, ServiceError, TimeoutError) as e:
        raise fail(str(e)) from None
    print_demo(console, report)
    if report.kept:
        console.print(
            f"the service keeps running: [bold]eventledger status --app {report.app_id}[/], "
            f"[bold]eventledger rebuild --app {report.app_id}[/], "
            f"[bold]eventledger stop --app {report.app_id}[/]"
        )
    if not report.money_ok:
        raise fail("the money check failed")


@app.command()
def torture(
    *,
    seconds: Annotated[
        float,
        typer.Option(
            "--seconds",
            "--duration",
            help="Seconds of workload under faults (on until each fault came once).",
        ),
    ] = 60.0,
    faults: Annotated[
        str,
        typer.Option(
            help="Faults, comma-separated: kill,stop,broker,coordinator,rebuild,node,hostile,"
            "leader,isr,repartition (leader and isr need --brokers 3; repartition runs the "
            "application on 4 partitions and grows it to 8, then 12)."
        ),
    ] = "kill,broker",
    brokers: Annotated[
        int,
        typer.Option(help="Kafka nodes: 1, or a cluster (3: replication factor 3, min ISR 2)."),
    ] = 1,
    accounts: Annotated[int, typer.Option(help="Accounts (2 of them very busy).")] = 40,
    clients: Annotated[int, typer.Option(help="Concurrent client threads.")] = 48,
    seed: Annotated[int, typer.Option(help="Seed of the workload and the nemesis.")] = 1,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write the machine-readable result here.")
    ] = None,
    log: Annotated[
        str,
        typer.Option(
            help="File for stderr during the run (Kafka clients log every refused "
            "connection while the broker is down); default: in the temporary directory."
        ),
    ] = "",
    keep: Annotated[
        str | None,
        typer.Option(
            help="Keep the broker's data and logs and the actors' state in this new directory."
        ),
    ] = None,
) -> None:
    """Run the fault suite: a bank workload under faults, then check exactly-once.

    Starts its own broker (temporary directory, free ports) and Ray, deploys the service
    through the coordinator, drives many clients retrying the same ids with short timeouts
    while the nemesis kills, stops and restarts things, then checks the committed events
    against every reply: lost, duplicate, phantom, crossed, unanswered, overdraft, totals.
    Exits non-zero on any anomaly."""
    import json
    import tempfile

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from eventledger.torture.faults import default_partitions, parse_faults
    from eventledger.torture.report import print_result
    from eventledger.torture.run import Snapshot, TortureConfig, run_torture

    try:
        selected = tuple(parse_faults(faults))
    except ValueError as e:
        raise fail(str(e)) from None
    if seconds <= 0 or accounts < 4 or clients < 2:
        raise fail("need --seconds > 0, --accounts >= 4 and --clients >= 2")
    try:
        config = TortureConfig(
            seconds=seconds,
            faults=selected,
            accounts=accounts,
            clients=clients,
            seed=seed,
            partitions=default_partitions(selected),
            keep=Path(keep) if keep else None,
            brokers=brokers,
        )
    except ValueError as e:
        raise fail(str(e)) from None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("starting", total=seconds, detail="")

    def show(s: Snapshot) -> None:
        bar.update(
            task,
            description=s.phase,
            completed=min(s.elapsed, s.seconds),
            detail=f"{s.ops:,} commands · {s.answered:,} answered · {s.faults} faults",
        )

    log = log or str(Path(tempfile.gettempdir()) / "eventledger-torture.log")
    try:
        with _stderr_to(Path(log)), bar:
            result = run_torture(config, on_progress=show)
    except (BrokerError, ServiceError, TimeoutError, RuntimeError) as e:
        raise fail(f"{e} (see {log})") from None
    print_result(console, result)
    console.print(f"stderr of the run (Kafka clients, Ray): {log}")
    if json_out:
        Path(json_out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        console.print(f"result written to {json_out}")
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def simulate(
    *,
    seeds: Annotated[int, typer.Option(help="How many seeds to run (from --first).")] = 100,
    first: Annotated[int, typer.Option(help="The first seed.")] = 0,
    seed: Annotated[
        int | None, typer.Option(help="Replay this one seed (overrides --seeds, --first).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Ops drawn per seed.")] = 2000,
    partitions: Annotated[int, typer.Option(help="Partitions of the simulated ledger.")] = 3,
    workers: Annotated[
        int, typer.Option(help="Processes to run seeds on (default: the cores).")
    ] = 0,
    shrink: Annotated[
        bool, typer.Option(help="Shorten a failing seed's trace before printing it.")
    ] = True,
    rebuild_guard: Annotated[
        bool,
        typer.Option(
            help="Off: rebuild as before commit 7beaf85 (a switch may miss the last batch), "
            "to see the checker find it."
        ),
    ] = True,
    move_guard: Annotated[
        bool,
        typer.Option(
            help="Off: a source does not adopt the slot record of its handoff (it goes on "
            "as if it still owned the slots it gave away), to see the checker find it."
        ),
    ] = True,
) -> None:
    """Run the deterministic simulator: the ledger's pure core over in-memory Kafka logs,
    from seeds, with crashes, aborts, clock jumps, standby takeovers, zombie writers, online
    rebuilds, online repartitions, commit markers that land late and legal adversarial
    clients, checking the invariants after every step. Exits non-zero on a violation,
    printing its trace and the command that replays it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from eventledger.sim.report import print_failure, print_summary, replay_command
    from eventledger.sim.run import Outcome, config_for, run_seeds
    from eventledger.sim.run import shrink as shorten

    if steps < 1 or seeds < 1 or partitions < 1:
        raise fail("need --steps, --seeds and --partitions >= 1")
    chosen = [seed] if seed is not None else list(range(first, first + seeds))
    processes = workers or min(os.cpu_count() or 1, len(chosen))
    bar = Progress(
        TextColumn("seeds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=True,
    )
    task = bar.add_task("seeds", total=len(chosen), detail="")
    failed = 0

    def done(outcome: Outcome) -> None:
        nonlocal failed
        failed += outcome.violation is not None
        bar.update(task, advance=1, detail=f"{failed} failing")

    with bar:
        summary = run_seeds(
            chosen,
            steps,
            partitions=partitions,
            workers=processes,
            on_done=done,
            rebuild_guard=rebuild_guard,
            move_guard=move_guard,
        )
    print_summary(console, summary)
    for failure in summary.failures[:3]:
        replay = replay_command(
            failure, steps, partitions, rebuild_guard=rebuild_guard, move_guard=move_guard
        )
        shown = failure
        if shrink and failure.seed is not None:
            config = config_for(
                failure.seed, partitions, rebuild_guard=rebuild_guard, move_guard=move_guard
            )
            shown = shorten(failure, config)
        print_failure(console, shown, replay)
    if summary.failures:
        raise typer.Exit(code=1)


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's stderr (file descriptor 2: librdkafka and Ray write there
    directly) to ``path`` for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
