"""The busiest routes served without FastAPI's parameter solving (``FastRoutes``): a
well-formed request of a hot route never reaches FastAPI's router, anything else does, and
both answer with the route's own checks (scope, account grant, body, problems). The routes
run in process over a fake client that records what reached it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from actors.messages import ViewAt
from eventledger.http import routes_accounts, routes_reads
from eventledger.http.app import api
from eventledger.http.auth import Scope as TokenScope
from eventledger.http.auth import TokenTable, mint_token
from eventledger.http.fastpath import HOT, FastRoutes
from eventledger.http.replica import Replica, bind_replica
from ledger.state import AccountView
from topology.envelopes import Position, Reply


class _Reads:
    def partition_of(self, account: str) -> int:
        return 0

    def read_batch(self, accounts: list[str], *, timeout: float) -> list[ViewAt]:
        return [self.read(account) for account in accounts]

    def read(self, account: str, **kw: Any) -> ViewAt:
        return ViewAt(view=AccountView("open", "EUR", 5, 0, 1), version=1, position=Position(0, 5))


class _Ledger:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.reads = _Reads()

    def new_command_id(self) -> str:
        return "generated"

    async def execute_async(self, account: str, command: Any, **kw: Any) -> Reply:
        self.sent.append((account, type(command).__name__, kw["command_id"]))
        return Reply.accept(
            command_id=kw["command_id"], aggregate_id=account, version=2, position=Position(0, 5)
        )


_TOKENS = {
    frozenset(s): mint_token(frozenset(s), name)
    for s, name in (
        ({TokenScope.READ}, "reader"),
        ({TokenScope.WRITE}, "writer"),
        ({TokenScope.MINT}, "minter"),
        ({TokenScope.READ, TokenScope.WRITE, TokenScope.OPERATE}, "nomint"),
    )
}
_TEAM, _TEAM_LINE = mint_token(frozenset(TokenScope), "team", accounts=("team-*",))


@pytest.fixture
def ledger() -> Iterator[_Ledger]:
    client = _Ledger()
    table = TokenTable.parse("\n".join([_TEAM_LINE, *(line for _, line in _TOKENS.values())]))
    bind_replica(Replica(client, table, 1.0, list))  # type: ignore[arg-type]
    yield client


def _token(*scopes: TokenScope) -> dict[str, str]:
    return {"Authorization": f"Bearer {_TOKENS[frozenset(scopes)][0]}"}


class _Recorder:
    """Stands for FastAPI's router: records the paths that reach it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _send_through(fast: FastRoutes, method: str, path: str, **extra: Any) -> int:
    headers = [(k.lower().encode(), v.encode()) for k, v in extra.get("headers", {}).items()]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": extra.get("query", b""),
        "root_path": "",
        "headers": headers,
    }
    body = extra.get("body", b"")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(fast(scope, receive, send))
    return int(sent[0]["status"])


def test_a_well_formed_hot_request_skips_fastapi_and_anything_else_reaches_it(
    ledger: _Ledger,
) -> None:
    router = _Recorder()
    fast = FastRoutes(router, [*routes_accounts.router.routes, *routes_reads.router.routes])
    mint = _token(TokenScope.MINT)
    amount = {"body": b'{"amount": 3}'}
    assert _send_through(fast, "POST", "/accounts/a/deposits", headers=mint, **amount) == 200
    keyed = {**mint, "Idempotency-Key": "k-1"}
    assert _send_through(fast, "POST", "/accounts/a/deposits", headers=keyed, **amount) == 200
    assert _send_through(fast, "GET", "/accounts/a", headers=_token(TokenScope.READ)) == 200
    assert router.paths == []
    assert ledger.sent == [("a", "Deposit", "minter:generated"), ("a", "Deposit", "minter:k-1")]
    for method, path, extra in (
        ("POST", "/accounts", {}),  # not hot
        ("PUT", "/accounts/a/deposits", {}),  # another method
        ("POST", "/accounts/a b/deposits", {}),  # an id outside the rule: FastAPI's 422
        ("POST", "/accounts/a/deposits/", {}),
        ("POST", "/accounts/a/deposits", {"headers": {**mint, "Idempotency-Key": "k 1"}}),
        ("GET", "/accounts/a", {"query": b"min_version=2"}),
        ("GET", "/accounts/a", {"headers": {"Idempotency-Key": "k-1"}}),  # GET takes no key
    ):
        assert _send_through(fast, method, path, **extra) == 299, (method, path, extra)
    assert len(router.paths) == 7
    assert len(ledger.sent) == 2


@pytest.mark.parametrize(("method", "path"), HOT)
def test_a_hot_route_needs_the_scope_its_declaration_names(
    ledger: _Ledger, method: str, path: str
) -> None:
    declared = api.openapi()["paths"][path][method.lower()]["security"][0]["bearer"]
    (scope,) = declared
    http = TestClient(api)
    url = path.format(account="a")
    for scopes in _TOKENS:
        answer = http.request(method, url, json={"amount": 3}, headers=_token(*scopes))
        if scope in scopes:
            assert answer.status_code == 200, (scopes, answer.json())
        else:
            assert answer.status_code == 403, scopes
            assert answer.json()["code"] == "insufficient_scope"


def test_the_hot_routes_answer_as_fastapi_does_for_tokens_grants_and_bodies(
    ledger: _Ledger,
) -> None:
    http = TestClient(api)
    team = {"Authorization": f"Bearer {_TEAM}"}
    unauthenticated = http.post("/accounts/a/deposits", json={"amount": 3})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert (
        http.post("/accounts/a/withdrawals", json={"amount": 3}, headers=team).json()["code"]
        == "forbidden_account"
    )
    assert http.get("/accounts/other", headers=team).json()["code"] == "forbidden_account"
    assert http.get("/accounts/team-1", headers=team).json()["position"] == "0:5"
    refused = http.post("/accounts/team-1/deposits", json={"amount": 1.5}, headers=team)
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_request")
    bad_key = {**team, "Idempotency-Key": "k 1"}  # through FastAPI: the same 422 problem
    refused = http.post("/accounts/team-1/deposits", json={"amount": 1}, headers=bad_key)
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_request")
    assert http.post("/accounts/team-1/deposits", json={"amount": 1}, headers=team).json() == {
        "account": "team-1",
        "command_id": "team:generated",
        "idempotency_key": "generated",
        "version": 2,
        "position": "0:5",
    }
    assert [account for account, _, _ in ledger.sent] == ["team-1"]
