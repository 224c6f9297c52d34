"""One e2e sender process: its share of the phase's commands through a client, closed loop
with ``window`` commands in flight; each round trip from the send call to the reply.

``mode``: ``ledger`` (``actors.client.LedgerClient`` against eventledger), ``reply``
(``actors.channel.ReplyChannel`` against Kafka Streams' topics, ``bench.peers``) or ``echo``
(the same against the raw echo). Run as ``python -m bench.e2e_worker CONFIG_JSON``; waits
for "go"."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Any

from bench.wire import emit, rss_bytes, wait_for_go
from topology.envelopes import Reply

__all__ = ["main", "share"]


def share(
    accounts: int, commands: int, seed: int, clients: int, index: int
) -> list[tuple[str, Any]]:
    """Client ``index``'s commands: those of the accounts it owns (account number mod
    ``clients``), in workload order, so each account's commands come from one sender."""
    from eventledger.workload import Workload

    ops = Workload(accounts=accounts, commands=commands, seed=seed).operations()
    return [(a, c) for a, c in ops if int(a.rsplit("-", 1)[1]) % clients == index]


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    mode = config["mode"]
    client: Any
    if mode == "ledger":
        from actors.client import LedgerClient
        from topology.settings import Settings

        settings = Settings.resolve(
            app_id=config["app_id"],
            bootstrap_servers=config["bootstrap"],
            partitions=config["partitions"],
            reply_lanes=config["reply_lanes"],
        )
        client = LedgerClient(settings, reply_lane=config["lane"], timeout=120)
    else:
        from bench.peers import peer_channel

        client = peer_channel(
            config["bootstrap"],
            config["app_id"],
            config["partitions"],
            reply_lanes=config["reply_lanes"],
            lane=config["lane"],
            echo=mode == "echo",
        )
    commands = share(
        config["accounts"], config["commands"], config["seed"], config["clients"], config["index"]
    )
    window = threading.Semaphore(config["window"])
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def done(sent: float, future: Future[Reply]) -> None:
        now = time.perf_counter()
        window.release()
        try:
            reply = future.result()
        except Exception as e:  # counted: the harness fails the phase on any
            with lock:
                outcomes[f"error: {type(e).__name__}"] += 1
            return
        with lock:
            latencies.append((now - sent) * 1000.0)
            outcomes["accepted" if reply.accepted else f"rejected: {reply.code}"] += 1

    emit("ready", commands=len(commands))
    wait_for_go()
    first_at = time.time()
    cpu_at_go = time.process_time()
    futures = []
    for account, command in commands:
        window.acquire()
        sent = time.perf_counter()
        future = client.send(account, command)
        future.add_done_callback(lambda f, sent=sent: done(sent, f))
        futures.append(future)
    for f in futures:
        try:
            f.exception(timeout=180)
        except TimeoutError:
            break
    last_at = time.time()
    cpu_seconds = time.process_time() - cpu_at_go
    client.close()
    with lock:
        emit(
            "report",
            sent=len(commands),
            answered=len(latencies),
            outcomes=dict(outcomes),
            first_at=first_at,
            last_at=last_at,
            latencies_ms=[round(x, 3) for x in latencies],
            rss_bytes=rss_bytes(),
            cpu_seconds=cpu_seconds,
        )


if __name__ == "__main__":
    main()
