"""The uvicorn workers' admission bound (pure ASGI, on a fake app that holds its requests):
``max_ongoing`` run, ``max_queued`` wait, the rest are refused 503 with Retry-After; the
probes pass whatever is held. And the serving modes' one vocabulary."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Receive, Scope, Send

from eventledger.http.admission import Admission
from eventledger.http.limits import Limits


class _Held:
    """An app that answers 200 once ``release`` is set, counting what runs at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = self.most = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        if scope["path"] not in ("/healthz", "/readyz"):
            await self.release.wait()
        self.running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def _request(app: Admission, path: str) -> tuple[int, dict[str, str], Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""}
    await app(scope, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0].get("headers", [])}
    return sent[0]["status"], headers, json.loads(sent[1]["body"])


def test_beyond_the_running_and_the_waiting_requests_are_refused_with_retry_after() -> None:
    async def scenario() -> None:
        held = _Held()
        app = Admission(held, Limits(max_ongoing=2, max_queued=3, queue_retry_after_s=1))
        admitted = [asyncio.create_task(_request(app, f"/a/{n}")) for n in range(5)]
        await asyncio.sleep(0.01)
        status, headers, body = await _request(app, "/a/refused")
        assert status == 503 and headers["retry-after"] == "1"
        assert body["code"] == "unavailable" and body["status"] == 503
        assert (await _request(app, "/healthz"))[0] == 200  # probes are never queued
        held.release.set()
        assert [(await t)[0] for t in admitted] == [200] * 5
        assert held.most == 3  # two held requests and the probe
        assert (await _request(app, "/a/later"))[0] == 200  # the slots are free again

    asyncio.run(scenario())


def test_the_cli_default_is_the_default_serving_mode() -> None:
    from eventledger.cli.service import serve
    from eventledger.http.serving import DEFAULT_SERVING, Serving

    assert {m.value for m in Serving} == {"proxy", "direct", "haproxy", "uvicorn"}
    defaults = serve.__kwdefaults__
    assert defaults is not None and defaults["serving"] == DEFAULT_SERVING.value
