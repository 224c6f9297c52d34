"""The HTTP phase's load (``bench.http``, ``bench.http_echo``): one path's requests as an
open loop at a rate (round trips from each request's scheduled time) or a closed loop with a
number in flight for some seconds (requests answered a second), a paced load at a rate
with no latencies kept (the GETs beside the commands), and the aiohttp session they
go through (HTTP/1.1 keep-alive; aiohttp, not httpx: httpx's pool is quadratic in queued
requests and became the bottleneck, measured with py-spy at a few hundred in flight)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

__all__ = ["Call", "closed_loop", "open_loop", "paced", "session"]

Call = Callable[[str], Awaitable[bool]]
"""One request about an account: answered as expected?"""


def session(url: str, token: str | None = None) -> aiohttp.ClientSession:
    """A session to ``url`` with a bearer ``token``, up to 512 connections, 60 s per request.
    An idle connection is closed after 4 s, before uvicorn closes it (5 s): a request never
    goes out on a connection the server is closing (a disconnect counted as a failure)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return aiohttp.ClientSession(
        url,
        headers=headers,
        connector=aiohttp.TCPConnector(limit=512, ssl=False, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def open_loop(
    call: Call, accounts: list[str], rate: float, seconds: float, warmup: float
) -> tuple[list[float], int]:
    """Requests sent at ``rate`` for ``warmup`` + ``seconds``: the round trips in ms (from
    each one's scheduled time) of those answered as expected after the warm-up, sorted, and
    how many were not."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    skip = round(rate * warmup)
    latencies: list[float] = []
    failed = 0

    async def one(i: int, scheduled: float) -> None:
        nonlocal failed
        if not await call(accounts[i % len(accounts)]):
            failed += 1
        elif i >= skip:
            latencies.append((loop.time() - scheduled) * 1000.0)

    tasks = []
    for i in range(skip + round(rate * seconds)):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return sorted(latencies), failed


async def closed_loop(
    call: Call, accounts: list[str], inflight: int, seconds: float
) -> tuple[float, int]:
    """``inflight`` requests in flight for ``seconds`` (each one that has begun finishes):
    requests answered as expected per second, and how many were not."""
    done = failed = 0
    n = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, failed, n
        while time.perf_counter() < stop_at:
            n += 1
            if await call(accounts[n % len(accounts)]):
                done += 1
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return done / (time.perf_counter() - started), failed


async def paced(
    call: Call,
    accounts: list[str],
    rate: float,
    going: Callable[[], bool],
    cap: int,
    *,
    skipped: Callable[[], None],
) -> None:
    """Requests started at ``rate`` while ``going()``, whatever their answers' pace (an
    open loop), at most ``cap`` in flight: a request due while ``cap`` are in flight is not
    sent (``skipped()`` then, at once). Returns once every request sent has ended."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Future[bool]] = set()
    due = loop.time()
    i = 0
    while going():
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(running) < cap:
            task = asyncio.ensure_future(call(accounts[i % len(accounts)]))
            running.add(task)
            task.add_done_callback(running.discard)
        else:
            skipped()
        i += 1
        due += 1.0 / rate
    await asyncio.gather(*running)
