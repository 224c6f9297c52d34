"""The routes' answers for what a real deployment rarely shows on demand: a reply that does
not come in time (504), an index behind or too busy (503), a service not ready (503). The
routes run in process over a fake client (the integration tests run them on Ray Serve for
real)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from actors.history import HistoryBehindError
from actors.retries import ReplyTimeoutError
from eventledger.http.app import api
from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.replica import Replica, bind_replica
from eventledger.http.routes_health import HUNG, NOT_CHECKED, CachedReadiness
from topology.history import HistoryDeadlineError


class _BehindReads:
    """A history index that is always behind, and too busy to fold a past state in time."""

    def history(self, account: str, **kw: Any) -> Any:
        raise HistoryBehindError("the index reaches offset 3, the partition ends at 9: retry")

    def state_at(self, account: str, at: Any, **kw: Any) -> Any:
        raise HistoryDeadlineError("history of 'a': the query ran past its deadline: retry")


class _SlowClient:
    """Never answers a command in time; its history index is always behind."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, str, str]] = []
        self.reads = _BehindReads()

    def new_command_id(self) -> str:
        return "generated"

    async def execute_async(self, account: str, command: Any, **kw: Any) -> Any:
        self.sent.append((account, command, kw["command_id"], kw["principal"]))
        raise ReplyTimeoutError("no reply", command_id=kw["command_id"], first_attempt_ms=42)


@pytest.fixture
def slow() -> Iterator[tuple[TestClient, _SlowClient, list[str]]]:
    client, problems = _SlowClient(), ["partitions not running: [1]"]
    bind_replica(Replica(client, TokenTable(insecure=True), 0.1, lambda: problems))  # type: ignore[arg-type]
    yield TestClient(api), client, problems


def test_a_reply_not_in_time_is_504_with_the_advice_to_retry_the_key(
    slow: tuple[TestClient, _SlowClient, list[str]],
) -> None:
    http, client, _ = slow
    answer = http.post(
        "/accounts/a/deposits", json={"amount": 5}, headers={"Idempotency-Key": "k1"}
    )
    assert answer.status_code == 504
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == "outcome_unknown" and "same Idempotency-Key (k1)" in body["detail"]
    assert body["command_id"] == "insecure-dev:k1" and body["idempotency_key"] == "k1"
    assert body["first_attempt_ms"] == 42
    assert client.sent[0] == ("a", client.sent[0][1], "insecure-dev:k1", "insecure-dev")


def test_the_same_key_from_two_tokens_is_two_command_ids(
    slow: tuple[TestClient, _SlowClient, list[str]],
) -> None:
    http, client, _ = slow
    alice, alice_line = mint_token(frozenset({Scope.WRITE}), "alice")
    bob, bob_line = mint_token(frozenset({Scope.WRITE}), "bob")
    bind_replica(Replica(client, TokenTable.parse(f"{alice_line}\n{bob_line}"), 0.1, list))  # type: ignore[arg-type]
    for token in (alice, bob, alice):
        http.post(
            "/accounts/a/withdrawals",
            json={"amount": 5},
            headers={"Idempotency-Key": "k1", "Authorization": f"Bearer {token}"},
        )
    assert [(s[2], s[3]) for s in client.sent] == [
        ("alice:k1", "alice"),
        ("bob:k1", "bob"),
        ("alice:k1", "alice"),
    ]
    generated = http.post(
        "/accounts/a/withdrawals", json={"amount": 5}, headers={"Authorization": f"Bearer {bob}"}
    ).json()
    assert (
        generated["command_id"] == "bob:generated" and generated["idempotency_key"] == "generated"
    )


def test_an_index_behind_is_503_with_retry_after(
    slow: tuple[TestClient, _SlowClient, list[str]],
) -> None:
    answer = slow[0].get("/accounts/a/history")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["code"] == "history_behind"
    assert "offset" not in answer.text  # the reason is logged, not answered


def test_a_fold_past_its_deadline_is_503_with_retry_after(
    slow: tuple[TestClient, _SlowClient, list[str]],
) -> None:
    answer = slow[0].get("/accounts/a/state?version=7")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["code"] == "history_deadline"


def test_readiness_is_generic_and_the_reasons_go_to_the_log(
    slow: tuple[TestClient, _SlowClient, list[str]],
) -> None:
    http, _, problems = slow
    answer = http.get("/readyz")
    assert answer.status_code == 503 and answer.json()["detail"] == "the service is not ready"
    assert answer.headers["retry-after"] == "2" and "partitions" not in answer.text
    problems.clear()
    assert http.get("/readyz").json() == {"status": "ready"}


def test_readiness_is_checked_in_the_background_at_most_once_a_ttl() -> None:
    checks, now, spawned = [], [0.0], []

    def check() -> list[str]:
        checks.append(now[0])
        return ["broker b-1:9092 does not answer"] if len(checks) == 1 else []

    ready = CachedReadiness(check, ttl_s=2.0, clock=lambda: now[0], spawn=spawned.append)
    assert ready() == [NOT_CHECKED] and ready() == [NOT_CHECKED]  # nobody waits for a check
    assert len(spawned) == 1 and checks == []  # one check at a time
    spawned.pop()()  # the check runs, in its thread
    assert ready() == ["broker b-1:9092 does not answer"] and checks == [0.0]
    now[0] = 1.9
    assert ready() == ["broker b-1:9092 does not answer"] and not spawned
    now[0] = 2.0
    assert ready() == ["broker b-1:9092 does not answer"]  # the last answer, while it checks
    spawned.pop()()
    assert ready() == [] and checks == [0.0, 2.0]


def test_readiness_is_not_ready_while_a_check_hangs_or_when_it_fails() -> None:
    now, spawned = [0.0], []

    def check() -> list[str]:
        raise ConnectionError("b-1:9092")

    failing = CachedReadiness(check, ttl_s=2.0, clock=lambda: now[0], spawn=spawned.append)
    assert failing() == [NOT_CHECKED]
    spawned.pop()()
    assert failing() == ["the readiness check failed: ConnectionError: b-1:9092"]
    hanging = CachedReadiness(list, clock=lambda: now[0], spawn=spawned.append, hung_s=15)
    assert hanging() == [NOT_CHECKED]
    spawned.pop()()  # ready: []
    now[0] = 2.0
    assert hanging() == [] and spawned  # a check begins, and never ends
    now[0] = 17.1
    assert hanging() == [HUNG]
