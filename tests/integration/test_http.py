"""The HTTP API with httpx, against the real deployment in the default serving mode (uvicorn
workers) on the session's Ray, over the session's shared service (``SharedServices``) on the
real broker. One API for the module, with small bounds (``LIMITS``) so that its limits are
reached in a few hundred requests; every test keeps to accounts of its own."""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from ray import serve

from actors.audit import read_events
from actors.history import deploy_history, stop_history
from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.limits import Limits
from eventledger.http.serving import deploy_http, stop_http
from eventledger.runtime import free_port
from ledger import LEDGER
from tests.integration.conftest import SharedServices
from tests.integration.waiting import wait_ready, wait_until
from topology.settings import Settings

PROBLEM = "application/problem+json"
LIMITS = Limits(max_ongoing=8, max_queued=4, rate_per_token=25, burst_per_token=100)
"""A replica takes 8 requests and queues 4 more; each token gets 100 requests at once,
then 25 a second: more than any other test here sends with one token (``wait_until`` polls
10 times a second)."""

COMMAND_TIMEOUT_S = 6.0
"""How long a command waits for its reply (the API's default is 10 s): far more than a reply
takes here, and it sets the deadline a held request is answered at (plus the margin)."""


@dataclass
class Api:
    settings: Settings
    url: str
    rw: dict[str, str]
    read: dict[str, str]
    write: dict[str, str]
    team_a: dict[str, str]
    flood: dict[str, str]
    stall: dict[str, str]

    def post(self, path: str, body: object = None, **kw: object) -> httpx.Response:
        headers = {**self.rw, **kw.pop("headers", {})}  # type: ignore[dict-item]
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]

    def get(self, path: str, **kw: object) -> httpx.Response:
        headers = {**self.rw, **kw.pop("headers", {})}  # type: ignore[dict-item]
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def api(shared: SharedServices) -> Iterator[Api]:
    settings = shared.supervised().settings
    tokens = {scope: mint_token(scopes, scope) for scope, scopes in (
        ("rw", frozenset(Scope)),
        ("read", frozenset({Scope.READ})),
        ("write", frozenset({Scope.WRITE})),
    )}  # fmt: skip
    tokens["team_a"] = mint_token(frozenset({Scope.READ, Scope.WRITE}), "team-a", ["team-a-*"])
    tokens["flood"] = mint_token(frozenset({Scope.READ}), "flood")
    tokens["stall"] = mint_token(frozenset(Scope), "stall")
    table = TokenTable.parse("\n".join(line for _, line in tokens.values()))
    url = deploy_http(
        settings, table, port=free_port(), limits=LIMITS, command_timeout=COMMAND_TIMEOUT_S
    )
    try:
        yield Api(
            settings,
            url,
            *(
                {"Authorization": f"Bearer {tokens[s][0]}"}
                for s in ("rw", "read", "write", "team_a", "flood", "stall")
            ),
        )
    finally:
        stop_http(settings.app_id)
        serve.shutdown()


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["type"] == f"urn:eventledger:{code}" and body["code"] == code
    assert body["status"] == status and isinstance(body["detail"], str)
    return body


def _answers(api: Api) -> None:
    """The service keeps answering: health, and a real command."""
    assert httpx.get(f"{api.url}/healthz", timeout=30).status_code == 200
    assert api.post("/accounts/probe/deposits", {"amount": 1}).status_code in (200, 404)


def test_health_readiness_and_docs(api: Api) -> None:
    assert httpx.get(f"{api.url}/healthz", timeout=30).json() == {"status": "ok"}
    wait_ready(api.url)
    assert httpx.get(f"{api.url}/docs", timeout=30).status_code == 200
    paths = httpx.get(f"{api.url}/openapi.json", timeout=30).json()["paths"]
    assert {"/accounts", "/accounts/{account}/deposits", "/accounts/{account}/history"} <= set(
        paths
    )
    schema = paths["/accounts/{account}/deposits"]["post"]["requestBody"]["content"]
    assert "amount" in schema["application/json"]["schema"]["properties"]
    assert paths["/accounts/{account}/deposits"]["post"]["security"] == [{"bearer": ["mint"]}]


def test_money_in_flight_and_a_settlement_run_as_the_service_from_a_replica(api: Api) -> None:
    listed = api.get("/transfers/in-flight")
    assert listed.status_code == 200 and isinstance(listed.json()["transfers"], list)
    body = {"source": "nobody", "action": "refund", "reason": "test"}
    _problem(api.post("/transfers/t-none/settle", body), 404, "unknown_transfer")


def test_each_route_and_money_is_conserved(api: Api) -> None:
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    opened = api.post("/accounts", {"id": a, "currency": "EUR", "overdraft_limit": "100"})
    assert opened.status_code == 201 and opened.json()["version"] == 1
    assert api.post("/accounts", {"id": b, "currency": "EUR"}).status_code == 201
    assert api.post(f"/accounts/{a}/deposits", {"amount": 1_000}).json()["version"] == 2
    assert api.post(f"/accounts/{a}/withdrawals", {"amount": "250"}).status_code == 200
    assert api.post(f"/accounts/{b}/deposits", {"amount": "40"}).status_code == 200
    refused = api.post(f"/accounts/{a}/withdrawals", {"amount": 10_000})
    _problem(refused, 409, "insufficient_funds")
    _problem(api.post("/accounts", {"id": a, "currency": "EUR"}), 409, "already_open")
    _problem(api.post("/accounts/nobody/deposits", {"amount": 5}), 404, "unknown_account")
    _problem(api.post(f"/accounts/{b}/close"), 409, "nonzero_balance")

    account = api.get(f"/accounts/{a}").json()
    assert re.fullmatch(r"[01]:[0-9]+", account.pop("position"))  # where it was read
    assert account == {
        "account": a, "status": "open", "currency": "EUR", "balance": 750,
        "overdraft_limit": 100, "version": 3,
        "pending_debits": 0, "pending_credits": 0, "available": 850, "in_flight": [],
    }  # fmt: skip
    _problem(api.get("/accounts/nobody"), 404, "unknown_account")

    page = api.get(f"/accounts/{a}/history", params={"limit": 2}).json()
    assert [e["sequence"] for e in page["entries"]] == [1, 2] and page["next_after"] == 2
    rest = api.get(f"/accounts/{a}/history", params={"after_version": 2}).json()
    assert [(e["type"], e["event"]["amount"], e["view"]["balance"]) for e in rest["entries"]] == [
        ("Withdrawn", 250, 750)
    ]
    assert rest["next_after"] is None and rest["entries"][0]["command_id"]
    deposit = page["entries"][1]
    at = datetime.fromtimestamp(deposit["timestamp_ms"] / 1000, UTC).isoformat()
    state = api.get(f"/accounts/{a}/state", params={"at": at}).json()
    assert state["version"] >= 2 and state["view"]["balance"] in (1_000, 750)
    assert api.get(f"/accounts/{a}/state", params={"version": 2}).json()["view"]["balance"] == 1_000
    _problem(
        api.get(f"/accounts/{a}/state", params={"at": "1970-01-01T00:00:00Z"}),
        404,
        "unknown_account",
    )
    _problem(api.get(f"/accounts/{a}/state"), 422, "invalid_request")

    assert api.post(f"/accounts/{b}/withdrawals", {"amount": 40}).status_code == 200
    assert api.post(f"/accounts/{b}/close").status_code == 200
    assert api.get(f"/accounts/{b}").json()["status"] == "closed"
    # money: the balances are the accepted moves
    balances = [api.get(f"/accounts/{x}").json()["balance"] for x in (a, b)]
    assert sum(balances) == 1_000 - 250 + 40 - 40


def test_a_read_with_a_replys_position_sees_the_write(api: Api) -> None:
    a = f"p-{uuid.uuid4().hex[:6]}"
    assert api.post("/accounts", {"id": a, "currency": "EUR"}).status_code == 201
    deposit = api.post(f"/accounts/{a}/deposits", {"amount": 70}).json()
    partition, seq = (int(n) for n in deposit["position"].split(":"))
    for bounds in ({"at_least": deposit["position"]}, {"min_version": deposit["version"]}):
        read = api.get(f"/accounts/{a}", params=bounds).json()
        assert (read["balance"], read["version"]) == (70, deposit["version"])
        assert read["position"] == deposit["position"]
    beyond = _problem(
        api.get(f"/accounts/{a}", params={"at_least": f"{partition}:{seq + 1_000}"}),
        409,
        "position_not_reached",
    )
    assert (beyond["version"], beyond["position"]) == (2, deposit["position"])
    _problem(
        api.get(f"/accounts/{a}", params={"at_least": f"{1 - partition}:1"}),
        422,
        "invalid_request",
    )


def test_transfers_plain_refused_pending_posted_and_voided(api: Api) -> None:
    a, b = f"ta-{uuid.uuid4().hex[:6]}", f"tb-{uuid.uuid4().hex[:6]}"
    for account in (a, b):
        assert api.post("/accounts", {"id": account, "currency": "EUR"}).status_code == 201
    assert api.post(f"/accounts/{a}/deposits", {"amount": 1_000}).status_code == 200
    key = {"Idempotency-Key": f"t-{uuid.uuid4().hex[:8]}"}
    moved = api.post("/transfers", {"source": a, "target": b, "amount": "300"}, headers=key)
    assert moved.status_code == 201 and moved.json()["command_id"] == f"rw:{key['Idempotency-Key']}"
    again = api.post("/transfers", {"source": a, "target": b, "amount": "300"}, headers=key)
    assert again.json() == moved.json()  # the same transfer, executed once
    _problem(api.post("/transfers", {"source": a, "target": "nobody", "amount": 5}), 404,
             "unknown_account")  # fmt: skip
    _problem(api.post("/transfers", {"source": a, "target": a, "amount": 5}), 422, "same_account")
    _problem(api.post("/transfers", {"source": a, "target": b, "amount": 5, "timeout_s": 9}),
             422, "invalid_request")  # fmt: skip

    pending = {"Idempotency-Key": f"p-{uuid.uuid4().hex[:8]}"}
    body = {"source": a, "target": b, "amount": 200, "pending": True, "timeout_s": 600}
    reserved = api.post("/transfers", body, headers=pending)
    assert reserved.status_code == 201
    view = api.get(f"/accounts/{a}").json()
    assert (view["balance"], view["pending_debits"], view["available"]) == (700, 200, 500)
    tid = reserved.json()["command_id"]  # the transfer's id: the key, scoped by the token
    assert api.post(f"/transfers/{tid}/post", {"source": a, "amount": 150}).status_code == 200
    _problem(api.post(f"/transfers/{tid}/void", {"source": a}), 404, "unknown_pending")

    voided = {"Idempotency-Key": f"v-{uuid.uuid4().hex[:8]}"}
    body = {"source": a, "target": b, "amount": 100, "pending": True}
    vid = api.post("/transfers", body, headers=voided).json()["command_id"]
    assert api.post(f"/transfers/{vid}/void", {"source": a}).status_code == 200

    def settled() -> tuple[int, int, int, int]:
        va, vb = (api.get(f"/accounts/{x}").json() for x in (a, b))
        return va["balance"], vb["balance"], va["pending_debits"], vb["pending_credits"]

    # a posted amount reaches the target in its own leg; 1,000 deposited: 300 + 150 moved,
    # the rest back
    wait_until(lambda: settled() == (550, 450, 0, 0), 60, "the posted amounts settled")


def test_authentication_and_scopes(api: Api) -> None:
    bare = httpx.get(f"{api.url}/accounts/x", timeout=30)
    _problem(bare, 401, "unauthenticated")
    assert bare.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(f"{api.url}/accounts/x", headers={"Authorization": "Bearer nope"}, timeout=30)
    _problem(wrong, 401, "invalid_token")
    basic = httpx.get(f"{api.url}/accounts/x", headers={"Authorization": "Basic eDp5"}, timeout=30)
    _problem(basic, 401, "unauthenticated")
    read_only = api.post("/accounts", {"id": "x", "currency": "EUR"}, headers=api.read)
    _problem(read_only, 403, "insufficient_scope")
    _problem(api.get("/accounts/x", headers=api.write), 403, "insufficient_scope")
    _problem(
        httpx.post(f"{api.url}/accounts/x/deposits", json={"amount": 1}, timeout=30),
        401,
        "unauthenticated",
    )
    assert api.get("/accounts/x", headers=api.read).status_code == 404  # read may read


def test_a_team_token_acts_on_its_own_accounts_only_and_mints_nothing(api: Api) -> None:
    tag = uuid.uuid4().hex[:6]
    mine, theirs = f"team-a-{tag}", f"team-b-{tag}"
    for account in (mine, theirs):
        assert api.post("/accounts", {"id": account, "currency": "EUR"}).status_code == 201
        assert api.post(f"/accounts/{account}/deposits", {"amount": 100}).status_code == 200
    team = api.team_a
    _problem(api.get(f"/accounts/{theirs}", headers=team), 403, "forbidden_account")
    _problem(
        api.post(f"/accounts/{theirs}/withdrawals", {"amount": 1}, headers=team),
        403,
        "forbidden_account",
    )
    stolen = {"source": theirs, "target": mine, "amount": 50}
    _problem(api.post("/transfers", stolen, headers=team), 403, "forbidden_account")
    _problem(
        api.post(f"/accounts/{mine}/deposits", {"amount": 1}, headers=team),
        403,
        "insufficient_scope",
    )
    assert api.get(f"/accounts/{mine}", headers=team).json()["balance"] == 100
    assert (
        api.post(f"/accounts/{mine}/withdrawals", {"amount": 10}, headers=team).status_code == 200
    )
    paid = {"source": mine, "target": theirs, "amount": 40}
    assert api.post("/transfers", paid, headers=team).status_code == 201
    balances = {a: api.get(f"/accounts/{a}").json()["balance"] for a in (mine, theirs)}
    assert balances == {mine: 50, theirs: 140}  # 200 deposited - 10 withdrawn: conserved


def test_idempotent_retries_through_the_header(api: Api) -> None:
    a = f"i-{uuid.uuid4().hex[:6]}"
    assert api.post("/accounts", {"id": a, "currency": "EUR"}).status_code == 201
    key = {"Idempotency-Key": f"dep-{a}"}
    first = api.post(f"/accounts/{a}/deposits", {"amount": 70}, headers=key)
    again = api.post(f"/accounts/{a}/deposits", {"amount": 70}, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["command_id"] == f"rw:dep-{a}"
    other = api.post(f"/accounts/{a}/deposits", {"amount": 71}, headers=key)
    _problem(other, 422, "id_reused")
    history = api.get(f"/accounts/{a}/history").json()["entries"]
    assert [e["command_id"] for e in history[1:]] == [f"rw:dep-{a}"]  # executed once
    assert api.get(f"/accounts/{a}").json()["balance"] == 70  # money: once
    _problem(
        api.post(f"/accounts/{a}/deposits", {"amount": 1}, headers={"Idempotency-Key": "k" * 300}),
        422,
        "invalid_request",
    )


def test_two_tokens_with_one_key_both_execute_and_history_names_who(api: Api) -> None:
    a, b = f"w-{uuid.uuid4().hex[:6]}", f"x-{uuid.uuid4().hex[:6]}"
    for account in (a, b):
        assert api.post("/accounts", {"id": account, "currency": "EUR"}).status_code == 201
    assert api.post(f"/accounts/{a}/deposits", {"amount": 100}).status_code == 200
    same = {"Idempotency-Key": "same-key"}
    for token in (api.rw, api.write, api.write):  # the write token retries its own once
        moved = api.post("/transfers", {"source": a, "target": b, "amount": 10},
                         headers={**token, **same})  # fmt: skip
        assert moved.status_code == 201, moved.text
    history = api.get(f"/accounts/{a}/history").json()["entries"]
    debits = [(e["command_id"], e["principal"]) for e in history if e["type"] == "TransferDebited"]
    assert debits == [("rw:same-key", "rw"), ("write:same-key", "write")]
    credits = api.get(f"/accounts/{b}/history").json()["entries"]
    assert {e["principal"] for e in credits if e["type"] == "TransferCredited"} == {"rw", "write"}
    assert [e["principal"] for e in history[:2]] == ["rw", "rw"]  # opened, deposited
    balances = [api.get(f"/accounts/{x}").json()["balance"] for x in (a, b)]
    assert balances == [80, 20]  # 100 deposited, two transfers of 10: conserved


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"amount": "' + b"9" * 40_000 + b'"}', 413, "body_too_large"),
        (b"[" * 5_000 + b"]" * 5_000, 422, "invalid_request"),
        (b'{"a":' * 2_500 + b"1" + b"}" * 2_500, 422, "invalid_request"),
        (b'{"amount": 2.5}', 422, "invalid_request"),
        (b'{"amount": true}', 422, "invalid_request"),
        (b'{"amount": "12a"}', 422, "invalid_request"),
        (b'{"amount": 99999999999999999999999}', 422, "invalid_request"),
        (b'{"amount": [1]}', 422, "invalid_request"),
        (b'{"amount": 5, "extra": 1}', 422, "invalid_request"),
        (b'"just a string"', 422, "invalid_request"),
        (b"{not json", 422, "invalid_request"),
        (b"\xff\xfe\x00", 422, "invalid_request"),
    ],
)
def test_hostile_bodies_get_4xx_and_the_service_keeps_answering(
    api: Api, content: bytes, status: int, code: str
) -> None:
    response = httpx.post(
        f"{api.url}/accounts/hostile/deposits",
        content=content,
        headers={**api.rw, "Content-Type": "application/json"},
        timeout=60,
    )
    _problem(response, status, code)
    _answers(api)


def test_hostile_requests_beyond_the_body(api: Api) -> None:
    _problem(api.get("/no/such/route"), 404, "http_404")
    _problem(api.get("/accounts/" + "x" * 300), 422, "invalid_request")
    _problem(api.get("/accounts/x/history", params={"limit": 10**6}), 422, "invalid_request")
    _problem(api.get("/accounts/x/history", params={"after_version": "-1"}), 422, "invalid_request")
    _problem(api.get("/accounts/x/state", params={"at": "yesterday"}), 422, "invalid_request")
    assert _lying_length(api) in ("413", "")  # refused, or never answered: no 2xx or 5xx
    _answers(api)


def _lying_length(api: Api) -> str:
    """A POST that declares a huge body and sends 13 bytes; the status it got ("" if none)."""
    with _raw_post(api, "/accounts/x/deposits", length=99999999, timeout=15) as conn:
        conn.sendall(b'{"amount": 1}')
        try:
            head = conn.recv(64).decode("latin-1")
        except TimeoutError:
            return ""
    return head.split(" ")[1] if head.startswith("HTTP/1.1 ") else ""


def _raw_post(
    api: Api, path: str, *, length: int, timeout: float, key: str | None = None
) -> socket.socket:
    """A connection that has sent a POST's head declaring ``length`` bytes of body, and no
    body yet (with the ``stall`` token: its own rate limit)."""
    host, port = api.url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {api.stall['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
        + (f"Idempotency-Key: {key}\r\n" if key else "")
        + "\r\n"
    )
    conn = socket.create_connection((host, int(port)), timeout=timeout)
    conn.sendall(head.encode())
    return conn


def test_an_id_or_a_key_with_a_slash_is_422(api: Api) -> None:
    for key in ("a/b", "a%2Fb"):
        _problem(
            api.post("/accounts/x/deposits", {"amount": 1}, headers={"Idempotency-Key": key}),
            422,
            "invalid_request",
        )
    _problem(api.get("/accounts/a%2Fb"), 422, "invalid_request")
    _problem(api.post("/transfers/t%2F1/void", {"source": "x"}), 422, "invalid_request")
    body = {"source": "a/b", "target": "x", "amount": 1}
    _problem(api.post("/transfers", body), 422, "invalid_request")


def test_a_flood_from_one_token_gets_429_with_retry_after(api: Api) -> None:
    """Four at a time from one token, to a route that answers 422 once the token is checked:
    the burst (100) passes, then the rate (25/s) holds; another token is not limited."""
    statuses: list[int] = []
    limited: httpx.Response | None = None
    with httpx.Client(headers=api.flood, timeout=60) as client, ThreadPoolExecutor(4) as pool:
        for _ in range(100):  # at most 100 x 20 requests
            got = list(pool.map(lambda _: client.get(f"{api.url}/accounts/x/state"), range(20)))
            statuses += [a.status_code for a in got]
            limited = next((a for a in got if a.status_code == 429), None)
            if limited is not None:
                break
    assert limited is not None, f"no 429 in {len(statuses)} requests"
    _problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert set(statuses) == {422, 429} and statuses.count(422) >= LIMITS.burst_per_token
    _problem(api.get("/accounts/x/state"), 422, "invalid_request")  # rw has its own bucket


def test_a_full_queue_is_503_with_retry_after_and_a_stalled_body_ends_at_its_deadline(
    api: Api,
) -> None:
    """Requests whose body never comes hold the replica's 8 slots and its queue of 4: the
    next ones are refused, 503 with Retry-After. A held one is answered 504 outcome_unknown
    at its deadline (the command timeout + the margin: 8 s), and once the connections
    close the API answers again. 64 are sent, as Serve's modes count approximately (its
    router may refuse early; after earlier cancellations it admitted up to 16): an unbounded
    queue would refuse none."""
    conns = [
        _raw_post(api, "/accounts/x/deposits", length=13, timeout=60, key=f"stall-{n}")
        for n in range(64)
    ]
    answers: dict[int, tuple[int, dict[str, str], bytes]] = {}

    def answered(status: int) -> bool:
        readable, _, _ = select.select([c for c in conns if c.fileno() not in answers], [], [], 0)
        for conn in readable:
            response = http.client.HTTPResponse(conn)
            response.begin()
            headers = {k.lower(): v for k, v in response.getheaders()}
            answers[conn.fileno()] = (response.status, headers, response.read())
        return any(s == status for s, _, _ in answers.values())

    try:
        try:
            wait_until(lambda: answered(503), 30, "a 503 from the full queue")
        except AssertionError as e:
            seen = sorted((s, b[:200]) for s, _, b in answers.values())
            raise AssertionError(f"{e}; answered: {seen}") from None
        refused = [(h, b) for s, h, b in answers.values() if s == 503]
        assert all(h.get("retry-after") == "1" for h, _ in refused)
        assert len(refused) >= 1 and len(answers) == len(refused)  # the others are held
        wait_until(lambda: answered(504), 60, "a held request answered at its deadline")
        cut = next(b for s, _, b in answers.values() if s == 504)
        problem = json.loads(cut)
        assert problem["code"] == "outcome_unknown"
        assert problem["idempotency_key"].startswith("stall-")
        assert {s for s, _, _ in answers.values()} <= {503, 504}
    finally:
        for conn in conns:
            conn.close()
    wait_until(
        lambda: httpx.get(f"{api.url}/healthz", timeout=30).status_code == 200,
        60,
        "the API answering once the stalled connections are gone",
    )
    _answers(api)


def test_a_read_while_the_history_index_is_gone_is_503_with_a_generic_body(api: Api) -> None:
    a = f"h-{uuid.uuid4().hex[:6]}"
    assert api.post("/accounts", {"id": a, "currency": "EUR"}).status_code == 201
    stop_history(api.settings.app_id)
    try:
        for path in (f"/accounts/{a}/history", f"/accounts/{a}/state"):
            answer = api.get(path, params={"version": 1} if path.endswith("state") else {})
            _problem(answer, 503, "unavailable")
            assert answer.headers["retry-after"] == "1"
            for leak in (api.settings.app_id, "history", "actor", "Error", "look up"):
                assert leak not in answer.text
        assert api.get(f"/accounts/{a}").json()["version"] == 1  # the partition still answers
    finally:
        deploy_history(api.settings, LEDGER)
    assert [e["sequence"] for e in api.get(f"/accounts/{a}/history").json()["entries"]] == [1]


def test_traceparent_continues_into_the_command(api: Api) -> None:
    a = f"t-{uuid.uuid4().hex[:6]}"
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    opened = api.post("/accounts", {"id": a, "currency": "EUR"}, headers={"traceparent": parent})
    assert opened.status_code == 201
    [event] = [e for e in read_events(api.settings, LEDGER) if e.envelope.aggregate_id == a]
    headers = dict(event.headers)
    assert headers["traceparent"].decode().split("-")[1] == trace_id


def test_stop_removes_the_api(api: Api) -> None:
    """Last in the module: the API is gone (its workers, or Serve with it when it served
    nothing else), so nothing answers on its port."""
    assert stop_http(api.settings.app_id)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.url}/healthz", timeout=30)
    assert not stop_http(api.settings.app_id)
