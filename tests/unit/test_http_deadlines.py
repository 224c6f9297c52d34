"""Every request ends by its deadline, and health checks never wait behind slow reads. The
real app, in process (ASGI), over a fake client whose calls block until the test lets them
go; the order of events is asserted, never a duration."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import httpx
import pytest

from actors.messages import ViewAt
from eventledger.http import routes_health
from eventledger.http.app import api
from eventledger.http.auth import TokenTable
from eventledger.http.limits import Limits
from eventledger.http.replica import Replica, bind_replica, bound_replica
from topology.envelopes import Position

QUICK = Limits(read_timeout_s=0.05, margin_s=0.05, blocking_threads=1)


class _Stuck:
    """Reads that block until ``release`` is set; commands that never get a reply."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.called: list[str] = []
        self.reads = self
        self.partitions: dict[str, int] = {}

    def partition_of(self, account: str) -> int:
        """Each account its own partition: each read a batch of its own."""
        return self.partitions.setdefault(account, len(self.partitions))

    def read_batch(self, accounts: list[str], *, timeout: float) -> list[ViewAt]:
        return [self.read(account) for account in accounts]

    def read(self, account: str, **kw: Any) -> ViewAt:
        self.called.append(account)
        self.entered.release()
        self.release.wait(60)
        return ViewAt(view=None, version=0, position=Position(0, 0))

    def new_command_id(self) -> str:
        return "generated"

    async def execute_async(self, account: str, command: Any, **kw: Any) -> Any:
        await asyncio.Event().wait()  # no reply, ever


@pytest.fixture
def stuck() -> Iterator[_Stuck]:
    client = _Stuck()
    yield client
    client.release.set()


def _bind(client: _Stuck, limits: Limits, timeout: float = 0.05) -> None:
    bind_replica(Replica(client, TokenTable(insecure=True), timeout, list, limits=limits))  # type: ignore[arg-type]


def _http() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api")


def test_a_read_past_its_deadline_is_504_timeout_without_waiting_for_the_read(
    stuck: _Stuck,
) -> None:
    _bind(stuck, QUICK)

    async def run() -> httpx.Response:
        async with _http() as http:
            return await http.get("/accounts/a")

    answer = asyncio.run(run())
    assert answer.status_code == 504 and answer.json()["code"] == "timeout"
    assert not stuck.release.is_set()  # the read still blocks: the answer did not wait for it


def test_a_call_queued_past_its_deadline_never_runs(stuck: _Stuck) -> None:
    _bind(stuck, QUICK)  # one blocking thread

    async def run() -> list[httpx.Response]:
        async with _http() as http:
            first = asyncio.create_task(http.get("/accounts/first"))
            await asyncio.to_thread(stuck.entered.acquire)  # the one thread is taken
            second = await http.get("/accounts/second")
            return [await first, second]

    answers = asyncio.run(run())
    assert [a.status_code for a in answers] == [504, 504]
    stuck.release.set()
    bound_replica().executor.shutdown(wait=True)  # whatever was still to run has run
    assert stuck.called == ["first"]


def test_a_command_without_a_reply_by_its_deadline_is_504_outcome_unknown(stuck: _Stuck) -> None:
    _bind(stuck, QUICK)

    async def run() -> httpx.Response:
        async with _http() as http:
            return await http.post(
                "/accounts/a/deposits", json={"amount": 1}, headers={"Idempotency-Key": "k-9"}
            )

    answer = asyncio.run(run())
    assert answer.status_code == 504
    assert answer.json()["code"] == "outcome_unknown" and answer.json()["idempotency_key"] == "k-9"


def test_a_body_that_never_comes_is_cut_at_the_deadline(stuck: _Stuck) -> None:
    """A client that sends its headers and never its body holds the request only until its
    deadline (a POST's: the command timeout plus the margin)."""
    _bind(stuck, QUICK)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/accounts/a/deposits",
        "raw_path": b"/accounts/a/deposits",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", b"13"), (b"idempotency-key", b"slow-1")],
        "client": ("127.0.0.1", 1),
        "server": ("api", 80),
    }

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the body never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(api(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 504
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert (body["code"], body["idempotency_key"]) == ("outcome_unknown", "slow-1")


def test_health_routes_are_async_and_touch_no_thread() -> None:
    assert inspect.iscoroutinefunction(routes_health.healthz)
    assert inspect.iscoroutinefunction(routes_health.readyz)


def test_health_and_readiness_answer_while_every_thread_is_taken_by_slow_reads(
    stuck: _Stuck,
) -> None:
    """Two blocking threads held by slow reads, four more reads queued behind them, and the
    event loop's own thread pool (where a sync route would run) held too: /healthz and
    /readyz answer all the same, before any read is let go."""
    _bind(stuck, Limits(read_timeout_s=30, blocking_threads=2))
    pool_held = threading.Event()

    async def run() -> tuple[httpx.Response, httpx.Response, list[int]]:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = 1
        holder = asyncio.create_task(anyio.to_thread.run_sync(pool_held.wait))
        async with _http() as http:
            reads = [asyncio.create_task(http.get(f"/accounts/r{n}")) for n in range(6)]
            for _ in range(2):
                await asyncio.to_thread(stuck.entered.acquire)
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            assert not any(r.done() for r in reads)  # the reads still wait
            stuck.release.set()
            pool_held.set()
            statuses = [(await r).status_code for r in reads]
        await holder
        return health, ready, statuses

    health, ready, statuses = asyncio.run(run())
    assert health.json() == {"status": "ok"} and ready.json() == {"status": "ready"}
    assert statuses == [404] * 6  # then every read answered (no such account)
