"""``eventledger broker``: the local Apache Kafka broker, or the local cluster of several."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from eventledger.broker import Broker, BrokerError
from eventledger.broker_cluster import BrokerCluster, ClusterHome
from eventledger.cli.common import console, fail

app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka broker (or cluster).")


def _cluster() -> BrokerCluster:
    """The local cluster: three nodes in the cache (``ClusterHome``'s defaults)."""
    return BrokerCluster(ClusterHome())


@app.command("start")
def broker_start(
    brokers: Annotated[
        int,
        typer.Option(
            help="1: the single broker (port 9092); 3: the local cluster (ports 9192-9194, "
            "replication factor 3, min ISR 2)."
        ),
    ] = 1,
) -> None:
    """Start the local broker or cluster (idempotent) and print its bootstrap address."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        console.print(f"KAFKA_BOOTSTRAP_SERVERS is set: using {external}, no broker started")
        return
    if brokers not in (1, ClusterHome().size):
        raise fail(f"--brokers must be 1 or {ClusterHome().size}")
    if brokers == 1:
        broker = Broker()
        was_running = broker.pid() is not None
        start, path = broker.start, broker.home.path
    else:
        cluster = _cluster()
        was_running = all(pid is not None for pid in cluster.pids().values())
        start, path = cluster.start, cluster.home.path
    started = time.monotonic()
    try:
        with console.status("starting Apache Kafka (first run downloads its jars)..."):
            bootstrap = start()
    except BrokerError as e:
        raise fail(str(e)) from None
    verb = "already running" if was_running else f"started in {time.monotonic() - started:.1f}s"
    what = "broker" if brokers == 1 else f"cluster of {brokers}"
    console.print(f"{what} {verb}: [bold]{bootstrap}[/] (data in {path})")
    if brokers > 1:
        console.print(f"use it: export KAFKA_BOOTSTRAP_SERVERS={bootstrap}", soft_wrap=True)


@app.command("stop")
def broker_stop() -> None:
    """Stop the local broker and every node of the local cluster (SIGTERM, wait, then kill)."""
    stopped = Broker().stop()
    console.print("broker stopped" if stopped else "no broker was running")
    cluster = _cluster()
    if any(pid is not None for pid in cluster.pids().values()):
        cluster.stop()
        console.print("cluster stopped")


@app.command("status")
def broker_status() -> None:
    """Say whether the local broker and the local cluster's nodes run and answer; exit 3
    when none runs."""
    brokers = [("broker", Broker())]
    brokers += [(f"cluster node {n}", node) for n, node in _cluster().nodes.items()]
    running = 0
    for name, broker in brokers:
        pid = broker.pid()
        if pid is None:
            if name == "broker":
                console.print("broker: not running")
            continue
        running += 1
        answers = "answers" if broker.running() else "does NOT answer"
        console.print(f"{name}: pid {pid} at {broker.home.bootstrap}, {answers} metadata requests")
    if not running:
        raise typer.Exit(code=3)
