"""``eventledger broker``: the local Apache Kafka broker."""

from __future__ import annotations

import os
import time

import typer

from eventledger.broker import Broker, BrokerError
from eventledger.cli.common import console, fail

app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka broker.")


@app.command("start")
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
        raise fail(str(e)) from None
    verb = "already running" if was_running else f"started in {time.monotonic() - started:.1f}s"
    console.print(f"broker {verb}: [bold]{bootstrap}[/] (data in {broker.home.path})")


@app.command("stop")
def broker_stop() -> None:
    """Stop the local broker (SIGTERM, wait, then kill)."""
    stopped = Broker().stop()
    console.print("broker stopped" if stopped else "no broker was running")


@app.command("status")
def broker_status() -> None:
    """Say whether the local broker runs and answers."""
    broker = Broker()
    pid = broker.pid()
    if pid is None:
        console.print("broker: not running")
        raise typer.Exit(code=3)
    answers = "answers" if broker.running() else "does NOT answer"
    console.print(f"broker: pid {pid} at {broker.home.bootstrap}, {answers} metadata requests")
