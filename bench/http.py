"""``python -m bench.http CONFIG``: one serving mode of the HTTP API measured beside the Python
client (a worker of the ``http`` phase, ``bench.http_phase``; one process per mode, so each
mode gets a local Ray of its own: Serve's mode is fixed when Ray starts).

One service (``partitions`` partitions, ``standbys`` per partition when given, else the
service's default) on the given broker and its HTTP API (``replicas``
replicas, a real bearer token whose rate is not bounded: one token carries every load) in
``mode``. Deposits of 1 go to ``accounts`` accounts, from one asyncio loop, each loop after a
warm-up:

- closed loops, ``inflight`` in flight, ``seconds`` each: the client's ``execute_async``;
  HTTP POST deposits; HTTP GET of the account;
- the client's closed loop alone and beside GETs from another process (so the client's loop
  keeps its own core time): an open loop of ``get_rate`` GETs/s (the goal's load: a bounded
  read load), and a closed loop of ``inflight`` GETs (as many as the API answers). Each
  condition in two slices of ``seconds``/2 after a warm-up of its own, in the order alone,
  open, closed, closed, open, alone, so a drift of the machine's load weighs on each alike;
- open loops at ``rate`` for ``open_seconds``: the client and HTTP POST, each in two slices
  (client, POST, POST, client), round trips from each request's scheduled time.

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
from collections import Counter
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any, Final

import aiohttp

from bench.http_load import Call, closed_loop, open_loop, paced, session
from bench.latency import percentile
from bench.wire import emit
from eventledger.runtime import free_port

__all__ = ["main"]

_WARMUP_S = 1.0
_IDLE, _OPEN, _CLOSED = 0, 1, 2  # what the GET loader does
_BESIDE: Final = (("alone", _IDLE), ("open", _OPEN), ("closed", _CLOSED))
_GET_CAP = 512  # the open GET loop's most in flight (the session's connections)


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


async def _get(web: aiohttp.ClientSession, account: str) -> str:
    """GET the account: its status ("200" as expected), or the error's name."""
    try:
        async with web.get(f"/accounts/{account}") as r:
            await r.read()
            return str(r.status)
    except (TimeoutError, aiohttp.ClientError) as e:
        return type(e).__name__


def _getter(web: aiohttp.ClientSession) -> Call:
    async def get(account: str) -> bool:
        return await _get(web, account) == "200"

    return get


@dataclass(frozen=True)
class _GetLoad:
    """The GET loader's orders and counts, shared with its process: ``mode`` (idle, an open
    loop at ``rate``, or a closed loop of ``inflight``), ``counts`` [answered as expected,
    not answered so or not sent], ``ready`` once a first GET was answered, ``stop``; at the
    end ``outcomes`` gets how many GETs ended in each way other than a 200 (a status or
    an error's name; "not sent": due while the open loop had its most in flight)."""

    inflight: int
    rate: float
    mode: Synchronized  # type: ignore[type-arg]
    counts: Any
    ready: Event
    stop: Event
    outcomes: Any  # a multiprocessing Queue of one dict[str, int]


def _get_load(url: str, token: str, accounts: list[str], load: _GetLoad) -> None:
    """In its own process until ``load.stop``: GETs as ``load.mode`` says."""
    mode, counts, stop = load.mode, load.counts, load.stop
    outcomes: Counter[str] = Counter()

    async def run() -> None:
        async with session(url, token) as web:

            async def counted(account: str) -> bool:
                outcome = await _get(web, account)
                counts[0 if outcome == "200" else 1] += 1
                if outcome != "200":
                    outcomes[outcome] += 1
                return outcome == "200"

            def not_sent() -> None:
                counts[1] += 1
                outcomes["not sent"] += 1

            await _get(web, accounts[0])
            load.ready.set()
            while not stop.is_set():
                if mode.value == _OPEN:
                    going = lambda: mode.value == _OPEN and not stop.is_set()  # noqa: E731
                    await paced(counted, accounts, load.rate, going, _GET_CAP, skipped=not_sent)
                elif mode.value == _CLOSED:
                    await closed_loop(counted, accounts, load.inflight, 0.25)
                else:
                    await asyncio.sleep(0.02)

    try:
        asyncio.run(run())
    finally:
        load.outcomes.put({k: v for k, v in outcomes.items() if v})


async def _beside_gets(
    paths: _Paths, url: str, token: str, accounts: list[str], cfg: dict[str, Any]
) -> dict[str, Any]:
    """The client's closed loop alone, beside an open loop of GETs and beside a closed one
    (the module's order): each condition's command rate, and the GETs' answered rate."""
    inflight, half = int(cfg["inflight"]), float(cfg["seconds"]) / 2
    spawn = multiprocessing.get_context("spawn")
    load = _GetLoad(
        inflight, float(cfg["get_rate"]), spawn.Value("i", _IDLE), spawn.Array("d", 2),
        spawn.Event(), spawn.Event(), spawn.Queue(),
    )  # fmt: skip
    mode, counts = load.mode, load.counts
    loader = spawn.Process(target=_get_load, args=(url, token, accounts, load), daemon=True)
    loader.start()
    # per condition: rate, failed, GETs answered and not, seconds measured
    totals = {name: [0.0, 0.0, 0.0, 0.0, 0.0] for name, _ in _BESIDE}
    try:
        if not await asyncio.to_thread(load.ready.wait, 60):
            raise RuntimeError("the GET loader did not start")
        for name, code in (*_BESIDE, *reversed(_BESIDE)):
            mode.value = code
            await closed_loop(paths.python, accounts, inflight, _WARMUP_S)
            gets_before, failed_before, started = counts[0], counts[1], time.perf_counter()
            rate, failed = await closed_loop(paths.python, accounts, inflight, half)
            total = totals[name]
            total[0] += rate / 2
            total[1] += failed
            total[2] += counts[0] - gets_before
            total[3] += counts[1] - failed_before
            total[4] += time.perf_counter() - started
    finally:
        load.stop.set()
        outcomes = await asyncio.to_thread(load.outcomes.get, True, 30)
        await asyncio.to_thread(loader.join, 30)
    # the loader's GETs that were not a 200 are reported, not a failure of the phase: the
    # measure is the commands' rate, and the GETs' own is reported beside it
    figures: dict[str, Any] = {"get_load_rate": load.rate, "get_load_outcomes": outcomes}
    for name, key in (("alone", "client_alone"), ("open", "client_beside_gets"),
                      ("closed", "client_beside_closed_gets")):  # fmt: skip
        commands, commands_failed, gets, gets_failed, elapsed = totals[name]
        figures[f"{key}_rate"], figures[f"{key}_failed"] = commands, int(commands_failed)
        if name != "alone":
            figures[f"{key}_get_rate"] = gets / elapsed
            figures[f"{key}_get_not_ok"] = int(gets_failed)
    return figures


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
        figures.update(await _beside_gets(paths, url, token, accounts, cfg))
        rate_s, half = float(cfg["rate"]), float(cfg["open_seconds"]) / 2
        latencies: dict[str, list[float]] = {"client": [], "post": []}
        failures = {"client": 0, "post": 0}
        for name in ("client", "post", "post", "client"):
            call = paths.python if name == "client" else paths.post
            slice_ms, failed = await open_loop(call, accounts, rate_s, half, _WARMUP_S)
            latencies[name] += slice_ms
            failures[name] += failed
        for name, ms in latencies.items():
            ms.sort()
            figures[f"{name}_open_p50_ms"] = percentile(ms, 0.5)
            figures[f"{name}_open_p99_ms"] = percentile(ms, 0.99)
            figures[f"{name}_open_failed"] = failures[name]
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
        standbys=cfg.get("standbys"),
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
        with Reads(settings, AccountView) as reads:
            held = sum(v.balance for v in map(reads.view, names) if v)
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
