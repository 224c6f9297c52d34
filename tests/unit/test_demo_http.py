"""The demo's HTTP leg sends a deposit again, with its key, while the answer says its outcome
is not known yet (504, 503), and takes any other answer as final."""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from eventledger.demo_http import HttpLeg, _post


def _serve(answers: list[int]) -> tuple[web.Application, Counter[str]]:
    """An app answering POSTs with ``answers`` in turn (the last one thereafter), counting
    each Idempotency-Key it saw."""
    seen: Counter[str] = Counter()

    async def deposit(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        seen[key] += 1
        status = answers[min(seen[key], len(answers)) - 1]
        return web.json_response({"n": seen[key]}, status=status)

    app = web.Application()
    app.router.add_post("/accounts/{account}/deposits", deposit)
    return app, seen


def _run(answers: list[int]) -> tuple[int, HttpLeg, Counter[str]]:
    app, seen = _serve(answers)
    leg = HttpLeg("test", 1)

    async def go() -> int:
        async with TestServer(app) as server, ClientSession(str(server.make_url("/"))) as http:
            status, _ = await _post(http, "/accounts/a/deposits", 5, "k-1", leg)
            return status

    return asyncio.run(go()), leg, seen


def test_an_outcome_not_known_yet_is_asked_again_with_the_same_key() -> None:
    status, leg, seen = _run([504, 503, 200])
    assert status == 200
    assert leg.resent == 2 and seen == {"k-1": 3}


def test_a_refusal_is_final() -> None:
    status, leg, seen = _run([422, 200])
    assert status == 422
    assert leg.resent == 0 and seen == {"k-1": 1}
