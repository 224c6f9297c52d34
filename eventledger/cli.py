"""The ``eventledger`` console script."""

from __future__ import annotations

import logging
import os
import time
from typing import Annotated

import typer
from rich.console import Console

from eventledger.broker import Broker, BrokerError

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
broker_app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka broker.")
app.add_typer(broker_app, name="broker")
console = Console()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False,
) -> None:
    """An event-sourced ledger service on Apache Kafka and Ray."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


@broker_app.command("start")
def broker_start() -> None:
    """Start the local broker (idempotent) and print its bootstrap address."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        console.print(f"KAFKA_BOOTSTRAP_SERVERS is set: using {external}, no broker started")
        return
    broker = Broker()
    was_running = broker.pid() is not None
    started = time.monotonic()
    try:
        with console.status("starting Apache Kafka (first run downloads its jars)..."):
            bootstrap = broker.start()
    except BrokerError as e:
        raise _fail(str(e)) from None
    verb = "already running" if was_running else f"started in {time.monotonic() - started:.1f}s"
    console.print(f"broker {verb}: [bold]{bootstrap}[/] (data in {broker.home.path})")


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the local broker (SIGTERM, wait, then kill)."""
    stopped = Broker().stop()
    console.print("broker stopped" if stopped else "no broker was running")


@broker_app.command("status")
def broker_status() -> None:
    """Say whether the local broker runs and answers."""
    broker = Broker()
    pid = broker.pid()
    if pid is None:
        console.print("broker: not running")
        raise typer.Exit(code=3)
    answers = "answers" if broker.running() else "does NOT answer"
    console.print(f"broker: pid {pid} at {broker.home.bootstrap}, {answers} metadata requests")


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts to open.")] = 2_000,
    commands: Annotated[int, typer.Option(help="Deposits and withdrawals to send.")] = 20_000,
    partitions: Annotated[int, typer.Option(help="Kafka partitions = partition actors.")] = 4,
    window: Annotated[int, typer.Option(help="Commands in flight at most.")] = 256,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 7,
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
        )
    except BrokerError as e:
        raise _fail(str(e)) from None
    print_demo(console, report)
    if not report.money_ok:
        raise _fail("the money check failed")
