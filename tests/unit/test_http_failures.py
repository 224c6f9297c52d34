"""Infrastructure failures over HTTP: every class of ``INFRASTRUCTURE`` raised by the real
routes (over a fake client) is a 503 or a 504 with a generic body, its reason in the log; a
timeout of a POST is ``outcome_unknown`` with the retry rule; nothing else becomes a 422."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from fastapi.testclient import TestClient
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    GetTimeoutError,
    ObjectLostError,
    RayError,
)

from actors.channel import OutcomeUnknownError
from actors.history import HistoryBehindError
from actors.kafka import FatalError, KafkaClientError
from eventledger.http.app import api
from eventledger.http.auth import TokenTable
from eventledger.http.errors import INFRASTRUCTURE
from eventledger.http.replica import Replica, bind_replica
from topology.history import HistoryDeadlineError

SECRET = "eventledger-t-1f2e-history-0 on 10.1.2.3:9092"
"""What a failure's own message may name, and no answer may."""

EXAMPLES: dict[type[Exception], Exception] = {
    GetTimeoutError: GetTimeoutError(f"Get timed out: {SECRET}"),
    HistoryBehindError: HistoryBehindError(f"the history of {SECRET} reaches offset 3: retry"),
    HistoryDeadlineError: HistoryDeadlineError(f"the fold of {SECRET} ran past 5 s"),
    TimeoutError: TimeoutError(SECRET),
    RayError: RayError(SECRET),
    ActorDiedError: ActorDiedError(),
    ActorUnavailableError: ActorUnavailableError(SECRET, None),
    ObjectLostError: ObjectLostError("ab" * 14, "", f"call site {SECRET}"),
    ValueError: ValueError(f"Failed to look up actor with name '{SECRET}'. This could be..."),
    KafkaException: KafkaException(KafkaError(KafkaError._TRANSPORT, f"{SECRET}: Disconnected")),
    KafkaClientError: KafkaClientError(SECRET),
    FatalError: FatalError(SECRET),
    BufferError: BufferError(f"Local: Queue full ({SECRET})"),
    RuntimeError: RuntimeError(f"the settlement was not stored by Kafka: {SECRET}"),
    OSError: ConnectionRefusedError(SECRET),
}

GET: dict[type[Exception], tuple[int, str]] = {
    GetTimeoutError: (504, "timeout"),
    HistoryBehindError: (503, "history_behind"),
    HistoryDeadlineError: (503, "history_deadline"),
    TimeoutError: (504, "timeout"),
    RayError: (503, "unavailable"),
    ActorDiedError: (503, "unavailable"),
    ActorUnavailableError: (503, "unavailable"),
    ObjectLostError: (503, "unavailable"),
    ValueError: (503, "unavailable"),
    KafkaException: (503, "unavailable"),
    KafkaClientError: (503, "unavailable"),
    FatalError: (503, "unavailable"),
    BufferError: (503, "unavailable"),
    RuntimeError: (503, "unavailable"),
    OSError: (503, "unavailable"),
}
"""What a GET answers for each; a POST answers the same, but a timeout is outcome_unknown."""


class _Reads:
    def __init__(self) -> None:
        self.error: Exception = RuntimeError("unset")

    def partition_of(self, account: str) -> int:
        return 0

    def read(self, account: str, **kw: Any) -> Any:
        raise self.error

    def read_batch(self, accounts: list[str], **kw: Any) -> Any:
        raise self.error

    def history(self, account: str, **kw: Any) -> Any:
        raise self.error


class _Broken:
    """A client whose every call fails with ``error``."""

    def __init__(self) -> None:
        self.reads = _Reads()

    def new_command_id(self) -> str:
        return "generated"

    async def execute_async(self, account: str, command: Any, **kw: Any) -> Any:
        raise self.reads.error


@pytest.fixture
def broken() -> Iterator[tuple[TestClient, _Broken]]:
    client = _Broken()
    bind_replica(Replica(client, TokenTable(insecure=True), 1.0, list))  # type: ignore[arg-type]
    yield TestClient(api, raise_server_exceptions=False), client


def _generic(answer: Any, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"urn:eventledger:{code}")
    for leak in (SECRET, "10.1.2.3", "history-0", "Traceback", "Error", "ray", "Kafka"):
        assert leak not in answer.text
    if status == 503:
        assert answer.headers["retry-after"] == "1"


def test_the_table_and_its_examples_cover_each_other() -> None:
    assert set(INFRASTRUCTURE) <= set(EXAMPLES) == set(GET)
    assert all(isinstance(e, cls) for cls, e in EXAMPLES.items())


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_a_read_that_fails_is_503_or_504_with_a_generic_body_and_the_reason_logged(
    broken: tuple[TestClient, _Broken], cls: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    http, client = broken
    client.reads.error = EXAMPLES[cls]
    with caplog.at_level(logging.WARNING, logger="eventledger.http.errors"):
        answer = http.get("/accounts/a")
    _generic(answer, *GET[cls])
    assert str(EXAMPLES[cls]) in caplog.text and type(EXAMPLES[cls]).__name__ in caplog.text


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_a_command_that_fails_is_503_or_504_outcome_unknown_with_the_retry_rule(
    broken: tuple[TestClient, _Broken], cls: type[Exception]
) -> None:
    http, client = broken
    client.reads.error = EXAMPLES[cls]
    answer = http.post(
        "/accounts/a/deposits", json={"amount": 5}, headers={"Idempotency-Key": "k1"}
    )
    status, code = GET[cls]
    if status == 504:
        _generic(answer, 504, "outcome_unknown")
        body = answer.json()
        assert body["idempotency_key"] == "k1" and "same Idempotency-Key" in body["detail"]
    else:
        _generic(answer, status, code)


def test_the_reply_wait_keeps_its_own_504_with_the_first_attempt(
    broken: tuple[TestClient, _Broken],
) -> None:
    http, client = broken
    client.reads.error = OutcomeUnknownError(SECRET, command_id="k2", first_attempt_ms=42)
    answer = http.post(
        "/accounts/a/deposits", json={"amount": 5}, headers={"Idempotency-Key": "k2"}
    )
    _generic(answer, 504, "outcome_unknown")
    body = answer.json()
    assert (body["command_id"], body["idempotency_key"], body["first_attempt_ms"]) == (
        "insecure-dev:k2",
        "k2",
        42,
    )


def test_a_post_without_a_key_that_times_out_is_told_to_send_one(
    broken: tuple[TestClient, _Broken],
) -> None:
    http, client = broken
    client.reads.error = GetTimeoutError(SECRET)
    answer = http.post("/accounts/a/deposits", json={"amount": 5})
    _generic(answer, 504, "outcome_unknown")
    assert "idempotency_key" not in answer.json() and "send one" in answer.json()["detail"]


def test_anything_else_is_a_generic_500(
    broken: tuple[TestClient, _Broken], caplog: pytest.LogCaptureFixture
) -> None:
    http, client = broken
    client.reads.error = KeyError(SECRET)
    with caplog.at_level(logging.ERROR, logger="eventledger.http.errors"):
        answer = http.get("/accounts/a")
    _generic(answer, 500, "internal")
    assert SECRET in caplog.text


def test_validation_is_still_422_and_names_what_is_wrong(
    broken: tuple[TestClient, _Broken],
) -> None:
    http, _ = broken
    body = {"source": "a", "target": "b", "amount": 1, "timeout_s": 9}
    answer = http.post("/transfers", json=body)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
    assert "timeout_s" in answer.json()["detail"]
    assert http.get("/accounts/a/history", params={"limit": 0}).status_code == 422
    for path in ("/accounts/a%2Fb", "/accounts/a%2fb/history", "/transfers/t%2F1/void"):
        slash = http.post(path, json={"source": "a"}) if "void" in path else http.get(path)
        assert slash.status_code == 422 and "'/'" in slash.json()["detail"], path
    assert http.get("/no/such/route").json()["code"] == "http_404"
