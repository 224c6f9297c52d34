"""The demo's HTTP leg: the same kind of command through the HTTP API, measured beside the
Python client's figure.

Deploys the API in its default serving mode on a free local port with a token minted for
the run (scopes ``mint`` and ``read``, every account), sends deposits with a fixed number in
flight, awaits each answer, then removes the API. Each deposit carries an Idempotency-Key,
so one whose connection broke before its answer, or whose answer was 504 (outcome unknown)
or 503, is sent again and executed once. Accepted
deposits count in the money the demo checks: the HTTP leg meets the same conservation check.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass, field

import aiohttp

from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.serving import DEFAULT_SERVING, deploy_http, stop_http
from eventledger.runtime import free_port
from topology.settings import Settings

__all__ = ["HttpLeg", "run_http_leg"]

log = logging.getLogger(__name__)


@dataclass
class HttpLeg:
    """What the HTTP leg did: deposits sent and accepted, the money they moved, refusals by
    status, its rate (accepted deposits a second, answers awaited) and round trips."""

    serving: str
    in_flight: int
    sent: int = 0
    accepted: int = 0
    moved: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    resent: int = 0
    """Deposits sent again, with their key, after a connection broke before the answer or
    an answer of 503 or 504."""
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_http_leg(
    settings: Settings, accounts: list[str], *, deposits: int, in_flight: int = 64, seed: int = 7
) -> HttpLeg:
    """Send ``deposits`` random deposits to ``accounts`` through the HTTP API with
    ``in_flight`` at a time; the API is removed afterwards whatever happened."""
    token, line = mint_token(frozenset({Scope.MINT, Scope.READ}), "demo")
    leg = HttpLeg(str(DEFAULT_SERVING), in_flight)
    url = deploy_http(settings, TokenTable.parse(line), port=free_port())
    try:
        rng = random.Random(seed)
        run = uuid.uuid4().hex[:8]
        work = [
            (rng.choice(accounts), rng.randint(1, 500), f"demo-{run}-{i}") for i in range(deposits)
        ]
        asyncio.run(_send(url, token, work, leg))
    finally:
        stop_http(settings.app_id)
    return leg


async def _send(url: str, token: str, work: list[tuple[str, int, str]], leg: HttpLeg) -> None:
    """``leg.in_flight`` senders over one aiohttp session (keep-alive connections; aiohttp,
    as the bench's http phase: httpx's pool costs more than the API at tens in flight)."""
    connector = aiohttp.TCPConnector(limit=leg.in_flight)
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as http:

        async def worker() -> None:
            while work:
                account, amount, key = work.pop()
                sent_at = time.perf_counter()
                status, text = await _post(http, f"/accounts/{account}/deposits", amount, key, leg)
                leg.latencies_ms.append((time.perf_counter() - sent_at) * 1000.0)
                leg.sent += 1
                if status == 200:  # a deposit answers 200 (201: an opening)
                    leg.accepted += 1
                    leg.moved += amount
                else:
                    leg.refused[status] = leg.refused.get(status, 0) + 1
                    log.info("HTTP deposit refused: %d %s", status, text)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(leg.in_flight)))
        leg.seconds = time.perf_counter() - started


async def _post(
    http: aiohttp.ClientSession, path: str, amount: int, key: str, leg: HttpLeg
) -> tuple[int, str]:
    """POST with ``key``: (status, body); sent again (at most ``_SENDS`` times in all) while
    the connection breaks before an answer or the answer says the outcome is not known yet
    (504 ``outcome_unknown``, 503 a full queue): the key makes the deposit execute once, and
    the answer to a resend is the first execution's."""
    for attempt in range(1, _SENDS + 1):
        try:
            async with http.post(
                path, json={"amount": amount}, headers={"Idempotency-Key": key}
            ) as answer:
                status, text = answer.status, await answer.text()
            if status not in _RETRYABLE or attempt == _SENDS:
                return status, text
            why = f"answered {status}"
        except aiohttp.ClientConnectionError as e:
            if attempt == _SENDS:
                raise
            why = repr(e)
        leg.resent += 1
        log.info("HTTP deposit %s: %s; sending it again", key, why)
        await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


_SENDS = 10
_RETRYABLE = frozenset({503, 504})
