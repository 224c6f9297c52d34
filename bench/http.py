"""``python -m bench.http CONFIG``: one serving mode of the HTTP API measured beside the Python
client (a worker of the ``http`` phase, ``bench.http_phase``; one process per mode, so each
mode gets a local Ray of its own: Serve's mode is fixed when Ray starts).

One service (``partitions`` partitions) on the given broker and its HTTP API (``replicas``
replicas, a real bearer token whose rate is not bounded: one token carries every load) in
``mode``. Deposits of 1 go to ``accounts`` accounts. In
this order, each after a warm-up, from one asyncio loop (GET load beside: from another
process, so the client's loop has its own core time):

- closed loop, ``inflight`` in flight, ``seconds`` each: the client's ``execute_async``;
  HTTP POST deposits; HTTP GET of the account; the client again with a closed loop of GETs
  beside;
- open loop at ``rate`` for ``open_seconds``: the client, then HTTP POST (round trips from
  each request's scheduled time).

Money is checked at the end: the actors' balances equal the fold of the events and lie
between the deposits answered as accepted and those sent. Reports (``bench.wire``) the rates,
the latencies and the counts.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sys
import time
import uuid
from multiprocessing.synchronize import Event
from typing import Any

import aiohttp

from bench.http_load import Call, closed_loop, free_port, open_loop, session
from bench.latency import percentile
from bench.wire import emit

__all__ = ["main"]

_WARMUP_S = 1.0


class _Paths:
    """The ways in, each counting its answers as expected and its failures."""

    def __init__(self, client: Any, web: aiohttp.ClientSession) -> None:
        self.client, self.web = client, web
        self.accepted = {"client": 0, "post": 0}
        self.sent = 0
        self.failed = 0

    async def python(self, account: str) -> bool:
        from ledger.commands import Deposit

        self.sent += 1
        try:
            ok = (await self.client.execute_async(account, Deposit(1), timeout=60)).accepted
        except TimeoutError:
            ok = False
        return self._count("client", ok)

    async def post(self, account: str) -> bool:
        self.sent += 1
        try:
            async with self.web.post(f"/accounts/{account}/deposits", json={"amount": 1}) as r:
                await r.read()
                ok = r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        return self._count("post", ok)

    def _count(self, path: str, ok: bool) -> bool:
        if ok:
            self.accepted[path] += 1
        else:
            self.failed += 1
        return ok


def _getter(web: aiohttp.ClientSession) -> Call:
    async def get(account: str) -> bool:
        try:
            async with web.get(f"/accounts/{account}") as r:
                await r.read()
                return r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    return get


def _get_load(url: str, token: str, accounts: list[str], inflight: int, stop: Event) -> None:
    """In its own process: GETs in a closed loop until ``stop`` is set."""

    async def run() -> None:
        async with session(url, token) as web:
            get = _getter(web)
            while not stop.is_set():
                await closed_loop(get, accounts, inflight, 0.5)

    asyncio.run(run())


async def _measure(
    client: Any, url: str, token: str, accounts: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, Any], _Paths]:
    inflight, seconds = int(cfg["inflight"]), float(cfg["seconds"])
    figures: dict[str, Any] = {}
    async with session(url, token) as web:
        paths = _Paths(client, web)
        get = _getter(web)
        for name, call in (("client", paths.python), ("post", paths.post), ("get", get)):
            await closed_loop(call, accounts, inflight, _WARMUP_S)
            rate, failed = await closed_loop(call, accounts, inflight, seconds)
            figures[f"{name}_rate"] = rate
            figures[f"{name}_failed"] = failed
        stop = multiprocessing.get_context("spawn").Event()
        loader = multiprocessing.get_context("spawn").Process(
            target=_get_load, args=(url, token, accounts, inflight, stop), daemon=True
        )
        loader.start()
        try:
            await asyncio.sleep(3.0)  # the loader's interpreter starts and its GETs run
            rate, failed = await closed_loop(paths.python, accounts, inflight, seconds)
            figures["client_beside_gets_rate"], figures["client_beside_gets_failed"] = rate, failed
        finally:
            stop.set()
            loader.join(30)
        rate_s, open_s = float(cfg["rate"]), float(cfg["open_seconds"])
        for name, call in (("client", paths.python), ("post", paths.post)):
            latencies, failed = await open_loop(call, accounts, rate_s, open_s, _WARMUP_S)
            figures[f"{name}_open_p50_ms"] = percentile(latencies, 0.5)
            figures[f"{name}_open_p99_ms"] = percentile(latencies, 0.99)
            figures[f"{name}_open_failed"] = failed
    return figures, paths


def main(cfg: dict[str, Any]) -> None:
    from actors.audit import fold_events
    from actors.client import LedgerClient
    from actors.deployment import stop_service
    from actors.reads import Reads
    from eventledger.assembly import deploy_service
    from eventledger.http.auth import Scope, TokenTable, mint_token
    from eventledger.http.limits import Limits
    from eventledger.http.serving import Serving, deploy_http, stop_http
    from eventledger.runtime import ensure_ray
    from ledger import LEDGER
    from ledger.commands import OpenAccount
    from ledger.state import AccountView
    from topology.names import NAMESPACE
    from topology.settings import Settings

    mode = Serving(cfg["mode"])
    # Every load runs under one token: the default rate per token (1,000/s) would cap the
    # rates measured, so the limiter is set past them (it still runs on every request).
    unlimited = Limits(rate_per_token=1e9, burst_per_token=10**9)
    os.environ.pop("RAY_ADDRESS", None)  # a local Ray of this mode's own
    if mode.ray_env is not None:  # before Ray starts: its processes inherit it
        os.environ[mode.ray_env] = "1"
    settings = Settings.resolve(
        app_id=f"{cfg['prefix']}-{mode}-{uuid.uuid4().hex[:4]}",
        bootstrap_servers=cfg["bootstrap"],
        partitions=int(cfg["partitions"]),
        environ={},
    )
    ensure_ray(NAMESPACE)
    token, line = mint_token(frozenset(Scope), "bench")
    deploy_service(settings)
    try:
        started = time.monotonic()
        url = deploy_http(
            settings, TokenTable.parse(line), port=free_port(), replicas=int(cfg["replicas"]),
            serving=mode, limits=unlimited,
        )  # fmt: skip
        deploy_s = time.monotonic() - started
        names = [f"acc-{i:05d}" for i in range(int(cfg["accounts"]))]
        with LedgerClient(settings, timeout=60) as client:

            async def setup() -> None:
                await asyncio.gather(*(client.execute_async(a, OpenAccount("EUR")) for a in names))

            asyncio.run(setup())
            figures, paths = asyncio.run(_measure(client, url, token, names, cfg))
        held = sum(v.balance for v in map(Reads(settings, AccountView).view, names) if v)
        folded = sum(s.balance for s in fold_events(settings, LEDGER).values())
        accepted = sum(paths.accepted.values())
    finally:
        stop_http(settings.app_id, shutdown=True)
        stop_service(settings.app_id)
    emit(
        "report",
        mode=str(mode),
        url=url,
        deploy_seconds=deploy_s,
        figures=figures,
        money={"actors": held, "events": folded, "accepted": accepted, "sent": paths.sent},
        money_ok=held == folded and accepted <= held <= paths.sent,
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
