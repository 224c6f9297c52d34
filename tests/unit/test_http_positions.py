"""Positions over HTTP: a POST answers where its commit put the partition, a GET answers the
position it read at and takes `min_version` / `at_least` (409 `position_not_reached` when
the partition did not reach them in its wait; 422 for a position of another partition, in an
application without slots, or of another form). The routes run in process over a fake
client; the integration tests run them on the real service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from actors.messages import ServedBy, ViewAt
from actors.reads import ForeignPositionError, PositionNotReachedError
from eventledger.http.app import api
from eventledger.http.auth import TokenTable
from eventledger.http.replica import Replica, bind_replica
from ledger.state import AccountView
from topology.envelopes import Position, Reply

AT = Position(1, 40)  # where the fake partition stands


class _Reads:
    """Account "a" on partition 1 at version 3, position `AT`: bounds beyond are not met."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int, Position | None]] = []
        self.served_by = ServedBy.STANDBY
        self.slots = False  # Reads' rule: a position of another partition only with slots

    def partition_of(self, account: str) -> int:
        return 1

    def read_batch(self, accounts: list[str], *, timeout: float) -> list[ViewAt]:
        return [self.read(a, min_version=0, at_least=None, timeout=timeout) for a in accounts]

    def read(
        self, account: str, *, min_version: int, at_least: Position | None, timeout: float
    ) -> ViewAt:
        if at_least is not None and at_least.partition != 1:
            if not self.slots:
                raise ForeignPositionError(f"position {at_least} is of another partition")
            at_least = None
        self.asked.append((account, min_version, at_least))
        if min_version > 3 or (at_least is not None and at_least.seq > AT.seq):
            raise PositionNotReachedError(account, 3, AT)
        view = AccountView("open", "EUR", 5, 0, 3)
        return ViewAt(view=view, version=3, position=AT, served_by=self.served_by)


class _Client:
    def __init__(self) -> None:
        self.reads = _Reads()

    def new_command_id(self) -> str:
        return "generated"

    async def execute_async(self, account: str, command: Any, **kw: Any) -> Reply:
        return Reply.accept(
            command_id=kw["command_id"], aggregate_id=account, version=3, position=AT
        )


@pytest.fixture
def http() -> Iterator[tuple[TestClient, _Client]]:
    client = _Client()
    bind_replica(Replica(client, TokenTable(insecure=True), 1.0, list))  # type: ignore[arg-type]
    yield TestClient(api), client


def test_a_post_answers_its_position_and_a_get_with_it_reads_at_least_there(
    http: tuple[TestClient, _Client],
) -> None:
    client, fake = http
    posted = client.post("/accounts/a/deposits", json={"amount": 5})
    assert posted.status_code == 200
    assert (posted.json()["version"], posted.json()["position"]) == (3, "1:40")
    read = client.get(
        "/accounts/a", params={"min_version": 3, "at_least": posted.json()["position"]}
    )
    assert read.status_code == 200
    assert read.json()["position"] == "1:40" and read.json()["balance"] == 5
    assert fake.reads.asked == [("a", 3, Position(1, 40))]
    plain = client.get("/accounts/a")
    assert plain.json()["position"] == "1:40"
    assert fake.reads.asked[-1] == ("a", 0, None)


def test_a_get_says_which_member_served_it(http: tuple[TestClient, _Client]) -> None:
    client, fake = http
    assert client.get("/accounts/a").headers["Eventledger-Served-By"] == "standby"
    fake.reads.served_by = ServedBy.WRITER
    assert client.get("/accounts/a").headers["Eventledger-Served-By"] == "writer"


@pytest.mark.parametrize("params", [{"min_version": 4}, {"at_least": "1:41"}])
def test_bounds_not_reached_are_409_with_where_the_partition_stands(
    http: tuple[TestClient, _Client], params: dict[str, Any]
) -> None:
    client, _ = http
    answer = client.get("/accounts/a", params=params)
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == "position_not_reached"
    assert (body["version"], body["position"], body["account"]) == (3, "1:40", "a")


def test_a_position_of_another_partition_is_422_never_ignored(
    http: tuple[TestClient, _Client],
) -> None:
    client, fake = http
    answer = client.get("/accounts/a", params={"at_least": "0:1"})
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_request"
    assert fake.reads.asked == []  # refused before any read


def test_with_slots_a_position_of_the_partition_before_a_move_is_passed(
    http: tuple[TestClient, _Client],
) -> None:
    client, fake = http
    fake.reads.slots = True
    answer = client.get("/accounts/a", params={"at_least": "0:99"})
    assert answer.status_code == 200 and answer.json()["position"] == "1:40"
    assert fake.reads.asked == [("a", 0, None)]


@pytest.mark.parametrize(
    "params", [{"at_least": "1"}, {"at_least": "1:x"}, {"at_least": "-1:2"}, {"min_version": -1}]
)
def test_bounds_of_another_form_are_422(
    http: tuple[TestClient, _Client], params: dict[str, Any]
) -> None:
    client, fake = http
    answer = client.get("/accounts/a", params=params)
    assert answer.status_code == 422
    assert fake.reads.asked == []
