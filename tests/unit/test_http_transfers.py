"""The routes of money in flight: the list (scope read) and an operator's settlement (scope
operate, recorded under the token's name), with RFC 9457 refusals. In process, over a fake
client (the module's Kafka side runs in tests/integration/test_in_flight.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventledger.http.app import api
from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.errors import SETTLEMENT_STATUS
from eventledger.http.replica import Replica, bind_replica
from eventledger.transfers import (
    InFlightTransfer,
    LostLeg,
    Settlement,
    SettlementError,
    SettlementRefusal,
)

LEG = LostLeg("a", "t1", 1, 7, "CreditTransfer", "b", "credit:0:1:a:t1")


class _Operations:
    """The two operations of ``BankClient`` the routes call, answered from memory."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    def in_flight(self, older_than_ms: int = 0) -> list[InFlightTransfer]:
        self.asked.append(("in_flight", older_than_ms))
        return [InFlightTransfer("a", "t1", "b", 30, 1_000, 600_000, (LEG,))]

    def settle(self, transfer_id: str, **kw: Any) -> Settlement:
        self.asked.append(("settle", (transfer_id, kw)))
        if transfer_id == "flying":
            raise SettlementError(SettlementRefusal.NOT_LOST, "in flight, not lost: wait")
        legs = (LEG,) if transfer_id == "t1" else ()
        return Settlement(
            kw["source"], transfer_id, kw["refund"], kw["operator"], kw["reason"], legs, True
        )


@pytest.fixture
def api_with_tokens() -> Iterator[tuple[TestClient, _Operations, dict[str, str]]]:
    tokens: dict[str, str] = {}
    lines = []
    for name, scopes in (("reader", {Scope.READ}), ("ops-alice", {Scope.OPERATE})):
        tokens[name], line = mint_token(frozenset(scopes), name)
        lines.append(line)
    client = _Operations()
    table = TokenTable.parse("\n".join(lines))
    bind_replica(Replica(client, table, 1.0, list))  # type: ignore[arg-type]
    yield TestClient(api), client, tokens


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_in_flight_is_listed_to_a_reader_with_its_lost_legs(
    api_with_tokens: tuple[TestClient, _Operations, dict[str, str]],
) -> None:
    http, client, tokens = api_with_tokens
    answer = http.get("/transfers/in-flight?older_than_s=600", headers=_auth(tokens["reader"]))
    assert answer.status_code == 200
    (row,) = answer.json()["transfers"]
    assert (row["source"], row["transfer_id"], row["amount"], row["age_ms"]) == (
        "a",
        "t1",
        30,
        600_000,
    )
    assert row["lost"][0]["leg"] == "CreditTransfer" and row["lost"][0]["dlq_offset"] == 7
    assert client.asked == [("in_flight", 600_000)]
    assert http.get("/transfers/in-flight", headers=_auth(tokens["ops-alice"])).status_code == 403


def test_a_settlement_needs_the_operate_scope_and_records_the_token_name(
    api_with_tokens: tuple[TestClient, _Operations, dict[str, str]],
) -> None:
    http, client, tokens = api_with_tokens
    body = {"source": "a", "action": "refund", "reason": "target closed for good"}
    refused = http.post("/transfers/t1/settle", json=body, headers=_auth(tokens["reader"]))
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert http.post("/transfers/t1/settle", json=body).status_code == 401
    assert client.asked == []

    done = http.post("/transfers/t1/settle", json=body, headers=_auth(tokens["ops-alice"]))
    assert done.status_code == 200, done.text
    answer = done.json()
    assert (answer["operator"], answer["action"], answer["refund"], answer["settled"]) == (
        "ops-alice",
        "refund",
        True,
        True,
    )
    assert answer["legs"][0]["aggregate"] == "b"
    assert client.asked == [
        (
            "settle",
            (
                "t1",
                {
                    "source": "a",
                    "refund": True,
                    "operator": "ops-alice",
                    "reason": "target closed for good",
                    "wait_s": 1.0,  # the command timeout: within the request's deadline
                },
            ),
        )
    ]


def test_a_transfer_not_lost_is_a_409_problem(
    api_with_tokens: tuple[TestClient, _Operations, dict[str, str]],
) -> None:
    http, _, tokens = api_with_tokens
    body = {"source": "a", "action": "credit", "reason": "why not"}
    answer = http.post("/transfers/flying/settle", json=body, headers=_auth(tokens["ops-alice"]))
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "not_lost" and "wait" in answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"source": "a", "action": "delete", "reason": "x"},
        {"source": "a", "action": "refund", "reason": "   "},
        {"source": "a", "action": "refund"},
        {"source": "a", "action": "refund", "reason": "x", "operator": "someone else"},
    ],
)
def test_a_bad_settlement_body_is_422(
    api_with_tokens: tuple[TestClient, _Operations, dict[str, str]], body: dict[str, str]
) -> None:
    http, client, tokens = api_with_tokens
    answer = http.post("/transfers/t1/settle", json=body, headers=_auth(tokens["ops-alice"]))
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
    assert client.asked == []


def test_every_settlement_refusal_has_its_own_status() -> None:
    assert set(SETTLEMENT_STATUS) == set(SettlementRefusal)
    assert len(set(SETTLEMENT_STATUS.values())) == len(SettlementRefusal)


def test_operate_tokens_are_minted_and_parsed() -> None:
    token, line = mint_token(frozenset({Scope.OPERATE, Scope.READ}), "ops")
    grant = TokenTable.parse(line).authorize(f"Bearer {token}", Scope.OPERATE)
    assert grant.name == "ops" and grant.scopes == {Scope.OPERATE, Scope.READ}
