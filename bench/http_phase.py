"""The ``http`` phase of ``python -m bench``: the HTTP API in each serving mode beside the Python
client, and the HTTP echo limit, as ratios within one run (issue 22; the modes and the
decision rule: docs/http.md).

The echo limit first: the raw echo (``bench.systems.echo``) and its minimal FastAPI front
(``bench.http_echo``, one uvicorn process), loaded from this process with POSTs in a closed
loop. Then each mode in ``http_modes``, one ``bench.http`` process each with a local Ray of
its own, on this run's broker: its figures, and its money check (a mode whose money does not
add up fails the phase)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import aiohttp

from bench.check import CheckFailedError
from bench.http_load import closed_loop, session
from bench.model import HttpServing, RunContext
from bench.procs import Worker

__all__ = ["run_http"]

log = logging.getLogger(__name__)

_MODE_TIMEOUT_S = 1_200.0


def run_http(ctx: RunContext, guard: Callable[[str, Callable[[], None]], None]) -> HttpServing:
    cfg = ctx.config
    result = HttpServing(
        inflight=cfg.http_inflight, seconds=cfg.http_seconds, rate=cfg.http_rate,
        open_seconds=cfg.http_open_seconds, get_rate=cfg.http_get_rate,
        replicas=cfg.http_replicas,
        partitions=cfg.partitions, accounts=cfg.http_accounts,
    )  # fmt: skip

    def echo() -> None:
        result.echo_rate = _echo_rate(ctx)

    guard("http:echo", echo)
    for mode in cfg.http_modes:

        def one(mode: str = mode) -> None:
            result.modes[mode] = _mode(ctx, mode)

        guard(f"http:{mode}", one)
    return result


def _echo_rate(ctx: RunContext) -> float:
    from bench.systems.echo import running_echo

    cfg = ctx.config
    with running_echo(ctx, "http-echo") as (app_id, _):
        front = Worker(
            "http-echo-front", sys.executable, "bench.http_echo",
            {"bootstrap": ctx.bootstrap, "app_id": app_id, "partitions": cfg.partitions},
            ctx.log_dir,
        )  # fmt: skip
        try:
            port = front.wait_for("ready", 120)["port"]
            accounts = [f"acc-{i:05d}" for i in range(cfg.http_accounts)]

            async def load() -> tuple[float, int]:
                async with session(f"http://127.0.0.1:{port}") as web:

                    async def post(account: str) -> bool:
                        try:
                            body = {"amount": 1}
                            async with web.post(f"/accounts/{account}/deposits", json=body) as r:
                                await r.read()
                                return r.status == 200
                        except (TimeoutError, aiohttp.ClientError):
                            return False

                    await closed_loop(post, accounts, cfg.http_inflight, 1.0)
                    return await closed_loop(post, accounts, cfg.http_inflight, cfg.http_seconds)

            with ctx.console.status("http: the echo limit..."):
                rate, failed = asyncio.run(load())
        finally:
            front.kill()
    if failed:
        raise CheckFailedError(f"the HTTP echo failed {failed} requests")
    return rate


def _mode(ctx: RunContext, mode: str) -> dict[str, Any]:
    cfg = ctx.config
    worker = Worker(
        f"http-{mode}", sys.executable, "bench.http",
        {"mode": mode, "bootstrap": ctx.bootstrap, "prefix": f"{ctx.prefix}-http",
         "partitions": cfg.partitions, "accounts": cfg.http_accounts,
         "replicas": cfg.http_replicas, "inflight": cfg.http_inflight,
         "seconds": cfg.http_seconds, "rate": cfg.http_rate,
         "open_seconds": cfg.http_open_seconds, "get_rate": cfg.http_get_rate,
         "standbys": cfg.http_standbys},
        ctx.log_dir,
    )  # fmt: skip
    try:
        with ctx.console.status(f"http: serving mode {mode}..."):
            report = worker.wait_for("report", _MODE_TIMEOUT_S)
        worker.finish(120)
    finally:
        worker.kill()
    if not report["money_ok"]:
        raise CheckFailedError(f"{mode}: money does not add up: {report['money']}")
    failed = {k: v for k, v in report["figures"].items() if k.endswith("failed") and v}
    if failed:
        raise CheckFailedError(f"{mode}: requests failed: {failed}")
    return {k: v for k, v in report.items() if k != "kind"}
