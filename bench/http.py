"""``python -m bench.http``: the HTTP API's round trip beside the Python client's.

One service (4 partitions) and its HTTP API (one Serve replica, a real bearer token) on the
local broker and a local Ray. Deposits of 1 go to ``--accounts`` accounts, first through
``LedgerClient.execute_async`` and then through ``POST /accounts/{id}/deposits`` (aiohttp,
HTTP/1.1 keep-alive, from the same asyncio loop): open loop at ``--rate`` for ``--seconds``
(each round trip measured from its scheduled send time, the first second left out; a request
not answered in 60 s is a failure), then closed loop with ``--inflight`` requests in flight
for ``--count`` requests. Money is checked at the end: the actors' balances equal the fold of
the events, and lie between the deposits answered as accepted and the deposits sent.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import aiohttp
import typer
from ray import serve
from rich.console import Console
from rich.table import Table

from actors.audit import fold_events
from actors.client import LedgerClient
from actors.deployment import stop_service
from actors.reads import Reads
from bench.latency import percentile
from eventledger.assembly import deploy_service
from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.serving import deploy_http, stop_http
from eventledger.runtime import ensure_broker, ensure_ray
from ledger import LEDGER
from ledger.commands import Deposit, OpenAccount
from ledger.state import AccountView
from topology.names import NAMESPACE
from topology.settings import Settings

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)
console = Console()

Call = Callable[[str], Awaitable[bool]]  # one deposit of 1 to an account: accepted?


async def _open_loop(call: Call, accounts: list[str], rate: float, seconds: float) -> list[float]:
    """Round trips (ms, from the scheduled time) of the requests sent at ``rate`` that were
    answered (accepted) within the path's timeout, the first second left out."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    count = round(rate * seconds)
    latencies: list[float] = []

    async def one(i: int, scheduled: float) -> None:
        if not await call(accounts[i % len(accounts)]):
            return
        if i >= rate:  # warm-up: the first second
            latencies.append((loop.time() - scheduled) * 1000.0)

    tasks = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return sorted(latencies)


async def _closed_loop(call: Call, accounts: list[str], inflight: int, count: int) -> float:
    """Requests per second with ``inflight`` in flight."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await call(accounts[i % len(accounts)])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return count / (time.perf_counter() - started)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Paths:
    """The two ways in, each counting its requests answered as accepted and its failures (no
    answer within 60 s, or refused)."""

    def __init__(self, client: LedgerClient, web: aiohttp.ClientSession) -> None:
        self.client, self.web = client, web
        self.accepted = {"python": 0, "http": 0}
        self.failed = {"python": 0, "http": 0}

    async def python(self, account: str) -> bool:
        try:
            ok = (await self.client.execute_async(account, Deposit(1), timeout=60)).accepted
        except TimeoutError:
            ok = False
        return self._count("python", ok)

    async def http(self, account: str) -> bool:
        try:
            async with self.web.post(f"/accounts/{account}/deposits", json={"amount": 1}) as r:
                await r.read()
                ok = r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        return self._count("http", ok)

    def _count(self, path: str, ok: bool) -> bool:
        if ok:
            self.accepted[path] += 1
        else:
            self.failed[path] += 1
        return ok


async def _run(
    client: LedgerClient, url: str, token: str, accounts: list[str], args: dict[str, float]
) -> tuple[dict[str, tuple[str, str]], _Paths]:
    # aiohttp, not httpx, generates the load: httpx's pool is quadratic in queued requests
    # and became the bottleneck (measured with py-spy at a few hundred requests in flight).
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as web:
        paths = _Paths(client, web)
        calls = (paths.python, paths.http)
        rows: dict[str, tuple[str, str]] = {}
        rate, seconds = args["rate"], args["seconds"]
        lat = [await _open_loop(c, accounts, rate, seconds) for c in calls]
        for q in (0.5, 0.99):
            rows[f"round trip p{q * 100:.0f} at {rate:,.0f}/s, ms"] = (
                f"{percentile(lat[0], q):.1f}",
                f"{percentile(lat[1], q):.1f}",
            )
        inflight, count = int(args["inflight"]), int(args["count"])
        rates = [await _closed_loop(c, accounts, inflight, count) for c in calls]
        rows[f"throughput, {inflight} in flight, requests/s"] = (
            f"{rates[0]:,.0f}",
            f"{rates[1]:,.0f}",
        )
        rows["requests accepted / failed (no answer in 60 s)"] = (
            f"{paths.accepted['python']:,} / {paths.failed['python']:,}",
            f"{paths.accepted['http']:,} / {paths.failed['http']:,}",
        )
    return rows, paths


@app.command()
def main(
    accounts: Annotated[int, typer.Option(help="Accounts deposited to.")] = 1_000,
    rate: Annotated[float, typer.Option(help="Open-loop requests per second.")] = 1_000.0,
    seconds: Annotated[float, typer.Option(help="Open-loop seconds per path.")] = 10.0,
    inflight: Annotated[int, typer.Option(help="Closed-loop requests in flight.")] = 64,
    count: Annotated[int, typer.Option(help="Closed-loop requests per path.")] = 10_000,
) -> None:
    bootstrap = ensure_broker()
    settings = Settings.resolve(
        app_id=f"bench-http-{uuid.uuid4().hex[:6]}", bootstrap_servers=bootstrap, partitions=4
    )
    ensure_ray(NAMESPACE)
    token, line = mint_token(frozenset(Scope), "bench")
    deploy_service(settings)
    try:
        url = deploy_http(settings, TokenTable.parse(line), port=_port())
        names = [f"acc-{i:05d}" for i in range(accounts)]
        with LedgerClient(settings, timeout=60) as client:

            async def setup() -> None:
                await asyncio.gather(*(client.execute_async(a, OpenAccount("EUR")) for a in names))

            asyncio.run(setup())
            args = {"rate": rate, "seconds": seconds, "inflight": inflight, "count": count}
            rows, paths = asyncio.run(_run(client, url, token, names, args))
        reads = Reads(settings, AccountView)
        held = sum(view.balance for view in map(reads.view, names) if view is not None)
        folded = sum(s.balance for s in fold_events(settings, LEDGER).values())
        accepted, sent = sum(paths.accepted.values()), 2 * (round(rate * seconds) + count)
        rows["Σ balances: actors / events folded (accepted ≤ Σ ≤ sent)"] = (
            f"{held:,} / {folded:,}",
            f"{accepted:,} ≤ Σ ≤ {sent:,}",
        )
        if not (held == folded and accepted <= held <= sent):
            raise SystemExit(f"MONEY MISMATCH: actors {held}, events {folded}, {accepted} accepted")
    finally:
        stop_http(settings.app_id)
        stop_service(settings.app_id)
        shutdown: Any = serve.shutdown  # untyped in Ray
        shutdown()
    table = Table(title="HTTP API beside the Python client (deposits)")
    for column in ("measure", "Python client", "HTTP"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, (python, http) in rows.items():
        table.add_row(name, python, http)
    console.print(table)


if __name__ == "__main__":
    app()
