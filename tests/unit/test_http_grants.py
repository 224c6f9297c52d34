"""Who may touch which account over HTTP: every route checks the account it touches (a
transfer's source) against the token's grant, money-creating operations need ``mint``, and
a refusal's detail (it can name balances) goes only to a token that may read the account.
The routes run in process over a fake client that records what reached it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from actors.messages import ViewAt
from eventledger.http.app import api
from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.limits import RateLimiter
from eventledger.http.replica import Replica, bind_replica, bound_replica
from eventledger.transfers import InFlightTransfer
from ledger.rejections import RejectionCode
from ledger.state import AccountView
from topology.envelopes import Position, Reply


class _Reads:
    def partition_of(self, account: str) -> int:
        return 0

    def read_batch(self, accounts: list[str], *, timeout: float) -> list[ViewAt]:
        return [self.read(account) for account in accounts]

    def read(self, account: str, **kw: Any) -> ViewAt:
        view = AccountView("open", "EUR", 5, 0, 1) if account.endswith("x") else None
        return ViewAt(view=view, version=1, position=Position(0, 5))


class _Ledger:
    """Accepts every command, except a withdrawal, which it refuses naming a balance."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.settled: list[str] = []
        self.reads = _Reads()

    def new_command_id(self) -> str:
        return "generated"

    async def execute_async(self, account: str, command: Any, **kw: Any) -> Reply:
        self.sent.append((account, type(command).__name__))
        if type(command).__name__ == "Withdraw":
            return Reply.refuse(
                command_id=kw["command_id"],
                aggregate_id=account,
                code=RejectionCode.INSUFFICIENT_FUNDS,
                message="cannot withdraw 800: 750 available",
                version=1,
                position=Position(0, 4),
            )
        return Reply.accept(
            command_id=kw["command_id"], aggregate_id=account, version=2, position=Position(0, 5)
        )

    def settle(self, transfer_id: str, **kw: Any) -> Any:
        self.settled.append(transfer_id)
        raise AssertionError("a refused settlement must not reach the service")

    def in_flight(self, **kw: Any) -> list[InFlightTransfer]:
        return [
            InFlightTransfer(source, f"t-{source}", "other", 5, 0, 0)
            for source in ("team-a-x", "team-b-x")
        ]


Http = tuple[TestClient, _Ledger, dict[str, dict[str, str]]]


@pytest.fixture
def http() -> Iterator[Http]:
    grants = {
        "a-rw": (frozenset({Scope.READ, Scope.WRITE}), ["team-a-*"]),
        "a-w": (frozenset({Scope.WRITE}), ["team-a-*"]),
        "a-mint": (frozenset({Scope.WRITE, Scope.MINT}), ["team-a-*"]),
        "all-r": (frozenset({Scope.READ}), ["*"]),
        "a-ops": (frozenset({Scope.OPERATE}), ["team-a-*"]),
    }
    lines, headers = [], {}
    for name, (scopes, accounts) in grants.items():
        token, line = mint_token(scopes, name, accounts)
        lines.append(line)
        headers[name] = {"Authorization": f"Bearer {token}"}
    ledger = _Ledger()
    bind_replica(Replica(ledger, TokenTable.parse("\n".join(lines)), 1.0, list))  # type: ignore[arg-type]
    yield TestClient(api), ledger, headers


def _forbidden(answer: Any) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "forbidden_account"


def test_a_team_token_reads_withdraws_and_transfers_on_its_own_accounts_only(http: Http) -> None:
    client, ledger, headers = http
    auth = headers["a-rw"]
    assert client.get("/accounts/team-a-x", headers=auth).status_code == 200
    assert client.post("/accounts/team-a-x/close", headers=auth).status_code == 200
    out = {"source": "team-a-x", "target": "team-b-x", "amount": 5}  # any target
    assert client.post("/transfers", json=out, headers=auth).status_code == 201
    assert ledger.sent == [("team-a-x", "CloseAccount"), ("team-a-x", "Transfer")]
    ledger.sent.clear()
    for path in ("/accounts/team-b-x", "/accounts/team-b-x/history", "/accounts/team-b-x/state"):
        _forbidden(client.get(path, params={"version": 1}, headers=auth))
    _forbidden(client.get("/accounts/team-b-nobody", headers=auth))  # same answer: no oracle
    _forbidden(client.post("/accounts/team-b-x/withdrawals", json={"amount": 1}, headers=auth))
    _forbidden(client.post("/accounts/team-b-x/close", headers=auth))
    stolen = {"source": "team-b-x", "target": "team-a-x", "amount": 5}
    _forbidden(client.post("/transfers", json=stolen, headers=auth))
    for action in ("post", "void"):
        _forbidden(client.post(f"/transfers/t/{action}", json={"source": "team-b-x"}, headers=auth))
    _forbidden(client.post("/accounts", json={"id": "team-b-new", "currency": "EUR"}, headers=auth))
    assert ledger.sent == []  # nothing refused here reached the ledger


def test_an_operator_settles_only_the_transfers_of_its_own_accounts(http: Http) -> None:
    client, ledger, headers = http
    body = {"source": "team-b-x", "action": "refund", "reason": "a lost leg"}
    _forbidden(client.post("/transfers/t-team-b-x/settle", json=body, headers=headers["a-ops"]))
    assert ledger.settled == []  # refused before anything reached the service


def test_money_is_created_only_with_mint(http: Http) -> None:
    client, ledger, headers = http
    deposit = client.post(
        "/accounts/team-a-x/deposits", json={"amount": 5}, headers=headers["a-rw"]
    )
    assert deposit.status_code == 403 and deposit.json()["code"] == "insufficient_scope"
    credit = {"id": "team-a-new", "currency": "EUR", "overdraft_limit": 100}
    opened = client.post("/accounts", json=credit, headers=headers["a-rw"])
    assert opened.status_code == 403 and "overdraft" in opened.json()["detail"]
    assert ledger.sent == []
    minted = client.post(
        "/accounts/team-a-x/deposits", json={"amount": 5}, headers=headers["a-mint"]
    )
    assert minted.status_code == 200
    _forbidden(
        client.post("/accounts/team-b-x/deposits", json={"amount": 5}, headers=headers["a-mint"])
    )
    assert client.post("/accounts", json=credit, headers=headers["a-mint"]).status_code == 201
    assert ledger.sent == [("team-a-x", "Deposit"), ("team-a-new", "OpenAccount")]


def test_a_refusal_names_balances_only_to_a_token_that_may_read(http: Http) -> None:
    client, _, headers = http
    body = {"amount": 800}
    reader = client.post("/accounts/team-a-x/withdrawals", json=body, headers=headers["a-rw"])
    assert reader.json()["detail"] == "cannot withdraw 800: 750 available"
    writer = client.post("/accounts/team-a-x/withdrawals", json=body, headers=headers["a-w"])
    assert writer.status_code == reader.status_code == 409
    assert writer.json()["code"] == "insufficient_funds" and "750" not in writer.text


def test_money_in_flight_lists_only_the_granted_sources(http: Http) -> None:
    client, _, headers = http
    rows = client.get("/transfers/in-flight", headers=headers["all-r"]).json()["transfers"]
    assert [r["source"] for r in rows] == ["team-a-x", "team-b-x"]
    a_only = {**headers["a-rw"]}
    rows = client.get("/transfers/in-flight", headers=a_only).json()["transfers"]
    assert [r["source"] for r in rows] == ["team-a-x"]


def test_a_flood_from_one_token_gets_429_with_retry_after_and_others_go_on(http: Http) -> None:
    client, _, headers = http
    replica = bound_replica()
    bind_replica(replace(replica, limiter=RateLimiter(rate=0.5, burst=2)))
    try:
        answers = [client.get("/accounts/team-a-x", headers=headers["a-rw"]) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["code"] == "rate_limited"
        assert answers[2].headers["retry-after"] == "2"
        assert client.get("/accounts/team-a-x", headers=headers["all-r"]).status_code == 200
    finally:
        bind_replica(replica)


@pytest.mark.parametrize("bad", ["a/b", "a b", "-a", "te\u202eam", "x" * 129])
def test_an_id_outside_the_rule_is_422_before_anything_is_sent(http: Http, bad: str) -> None:
    client, ledger, headers = http
    auth = headers["a-mint"]
    keyed = client.post(
        "/accounts/team-a-x/deposits",
        json={"amount": 1},
        headers={**auth, "Idempotency-Key": bad.encode()},  # type: ignore[dict-item]
    )
    opened = client.post("/accounts", json={"id": bad, "currency": "EUR"}, headers=auth)
    paid = client.post(
        "/transfers", json={"source": "team-a-x", "target": bad, "amount": 1}, headers=auth
    )
    for answer in (keyed, opened, paid):
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "invalid_request"
    assert ledger.sent == []
