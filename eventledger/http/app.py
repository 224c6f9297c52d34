"""The routes of the HTTP API (FastAPI), over the replica's ``BankClient``.

Module-level routes read the replica's client and token table from ``api.state`` (set by
the Ray Serve deployment in ``eventledger.http.serving``; one process per replica).
Invariants:
- a POST is one command; its ``Idempotency-Key`` header is the command id (absent: a new
  id, returned in the answer), so a retry with the same key gets the first answer and is
  executed at most once (the service's idempotency window);
- a body is read up to ``MAX_BODY_BYTES`` and parsed by pydantic's JSON parser (bounded
  nesting): a hostile body is a 4xx problem, never a crash of the replica;
- money is an integer of minor units, given as a JSON number or a string of digits (never
  a float); answers give it as a number;
- a ``traceparent`` header is the parent of the command's trace (the actor continues it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import context as otel_context
from opentelemetry.propagate import extract
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from actors.channel import OutcomeUnknownError
from actors.history import HistoryBehindError
from eventledger.bank import BankClient
from eventledger.http.auth import AuthError, Grant, Scope, TokenTable
from eventledger.http.problems import problem, refusal_problem
from eventledger.transfers import SettlementError, SettlementRefusal
from ledger.commands import (
    CloseAccount,
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from ledger.state import MAX_MINOR_UNITS
from topology.history import MAX_PAGE
from topology.limits import MAX_ID_CHARS

__all__ = ["MAX_BODY_BYTES", "SETTLEMENT_STATUS", "Replica", "api", "bind_replica"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 16 * 1024
MAX_PENDING_TIMEOUT_S: Final = 30 * 24 * 3600.0  # a reservation lasts at most 30 days
_DIGITS = re.compile(r"-?[0-9]{1,19}")

api = FastAPI(
    title="eventledger",
    summary="An event-sourced ledger: accounts, their history and their state at a time.",
    description=(
        "Money is an integer of minor units (a JSON number or a string of digits). "
        "Errors are RFC 9457 problem details. Authenticate with `Authorization: Bearer "
        "<token>` (scopes `read`, `write`, `operate`). A POST's `Idempotency-Key` is its "
        "command id."
    ),
    version="1",
)


def _money(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("money is an integer of minor units: a JSON number or a string")
    if isinstance(value, str):
        if _DIGITS.fullmatch(value) is None:
            raise ValueError("money as a string is an optional '-' and up to 19 digits")
        value = int(value)
    if not -MAX_MINOR_UNITS <= value <= MAX_MINOR_UNITS:
        raise ValueError(f"money is at most {MAX_MINOR_UNITS} minor units either way")
    return value


Money = Annotated[int, BeforeValidator(_money)]
AccountId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


class OpenBody(BaseModel):
    """Open an account."""

    model_config = ConfigDict(extra="forbid")
    id: AccountId
    currency: Annotated[str, Field(min_length=1, max_length=16)]
    overdraft_limit: Money = 0


class AmountBody(BaseModel):
    """A deposit or a withdrawal."""

    model_config = ConfigDict(extra="forbid")
    amount: Money


class EmptyBody(BaseModel):
    """Nothing (closing an account)."""

    model_config = ConfigDict(extra="forbid")


class TransferBody(BaseModel):
    """Move `amount` from `source` to `target` (same currency); `pending` only reserves it,
    voided after `timeout_s` on the source partition's clock unless posted."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId
    target: AccountId
    amount: Money
    pending: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=MAX_PENDING_TIMEOUT_S)] | None = None


class PostBody(BaseModel):
    """Complete a pending transfer of `source` with `amount` (absent: all it reserved)."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId
    amount: Money | None = None


class VoidBody(BaseModel):
    """Release a pending transfer of `source`."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId


class SettleBody(BaseModel):
    """Settle the lost leg of a transfer of `source`: `refund` sends the money back to the
    source, `credit` delivers the leg as it was; `reason` is recorded."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId
    action: Literal["refund", "credit"]
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]


SETTLEMENT_STATUS: Final[dict[SettlementRefusal, int]] = {
    SettlementRefusal.INVALID_REQUEST: 422,
    SettlementRefusal.NOT_LOST: 409,
    SettlementRefusal.UNKNOWN_TRANSFER: 404,
}


# -- plumbing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replica:
    """What the routes of this process use: set once by the Serve replica's constructor."""

    client: BankClient
    tokens: TokenTable
    timeout: float
    readiness: Callable[[], list[str]]


_replica: list[Replica] = []


def bind_replica(replica: Replica) -> None:
    """Give this process's routes their client, tokens, command timeout and readiness check
    (a module function: the Serve deployment class is shipped by value, this module is not)."""
    _replica[:] = [replica]


def _here() -> Replica:
    if not _replica:
        raise RuntimeError("the routes are not bound to a replica")
    return _replica[0]


def _client(_: Request) -> BankClient:
    return _here().client


def _grant(scope: Scope) -> Callable[[Request], Awaitable[Grant]]:
    async def check(request: Request) -> Grant:
        return _here().tokens.authorize(request.headers.get("authorization"), scope)

    return check


Reader = Annotated[Grant, Depends(_grant(Scope.READ))]
Writer = Annotated[Grant, Depends(_grant(Scope.WRITE))]
Minter = Annotated[Grant, Depends(_grant(Scope.MINT))]
Operator = Annotated[Grant, Depends(_grant(Scope.OPERATE))]
IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The command id: a retry with the same key is executed at most once.",
    ),
]


_M = TypeVar("_M", bound=BaseModel)


class _BodyError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


async def _body(request: Request, model: type[_M]) -> _M:
    """The request's JSON body as ``model``: at most MAX_BODY_BYTES (413), parsed by
    pydantic's own JSON parser, which bounds nesting (422)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _BodyError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    data = b"".join(chunks) or b"{}"
    try:
        return model.model_validate_json(data)
    except ValidationError as e:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)[:5]
        )
        raise _BodyError(422, "invalid_request", detail) from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its body itself (``_body``)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def _execute(
    request: Request,
    grant: Grant,
    account: str,
    command: Any,
    key: str | None,
    *,
    created: bool = False,
) -> JSONResponse:
    """Send one command on ``account`` (which ``grant`` must cover: 403 otherwise) with the
    request's trace as parent; its reply as JSON, or a problem. A refusal's detail can name
    balances, so a token that may not read the account gets only the refusal's title."""
    grant.require(account)
    client = _client(request)
    command_id = key or client.new_command_id()
    parent = extract(dict(request.headers))
    token = otel_context.attach(parent)
    try:
        reply = await client.execute_async(
            account, command, command_id=command_id, timeout=_here().timeout
        )
    except OutcomeUnknownError as e:
        return problem(
            504,
            "outcome_unknown",
            f"no reply in time: the outcome is unknown. Retry with the same Idempotency-Key "
            f"({command_id}): it is executed at most once.",
            command_id=command_id,
            first_attempt_ms=e.first_attempt_ms,
        )
    finally:
        otel_context.detach(token)
    if not reply.accepted:
        return refusal_problem(
            reply, command_id=command_id, account=account, detailed=Scope.READ in grant.scopes
        )
    body = {"account": account, "command_id": command_id, "version": reply.version}
    return JSONResponse(body, status_code=201 if created else 200)


# -- errors ----------------------------------------------------------------------------------


@api.exception_handler(AuthError)
async def _auth_error(_: Request, e: AuthError) -> Response:
    challenge = "Bearer" if e.code == "unauthenticated" else f'Bearer error="{e.code}"'
    return problem(e.status, e.code, e.message, headers={"WWW-Authenticate": challenge})


@api.exception_handler(_BodyError)
async def _body_error(_: Request, e: _BodyError) -> Response:
    return problem(e.status, e.code, e.detail)


@api.exception_handler(RequestValidationError)
async def _validation_error(_: Request, e: RequestValidationError) -> Response:
    detail = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5]
    )
    return problem(422, "invalid_request", detail)


@api.exception_handler(HTTPException)
async def _http_error(_: Request, e: HTTPException) -> Response:
    return problem(e.status_code, f"http_{e.status_code}", str(e.detail), headers=e.headers)


@api.exception_handler(HistoryBehindError)
async def _behind(_: Request, e: HistoryBehindError) -> Response:
    return problem(503, "history_behind", str(e), headers={"Retry-After": "1"})


@api.exception_handler(SettlementError)
async def _settlement_refused(_: Request, e: SettlementError) -> Response:
    return problem(SETTLEMENT_STATUS[e.code], e.code, str(e))


@api.exception_handler(ValueError)
async def _value_error(_: Request, e: ValueError) -> Response:
    return problem(422, "invalid_request", str(e))


@api.exception_handler(Exception)
async def _unexpected(_: Request, e: Exception) -> Response:
    log.exception("unexpected error")
    return problem(500, "internal", f"{type(e).__name__}: the request failed; it may be retried")


# -- routes ----------------------------------------------------------------------------------


@api.post(
    "/accounts",
    status_code=201,
    openapi_extra=_schema(OpenBody),
    summary="Open an account (scope write; with an overdraft limit, mint too)",
)
async def open_account(request: Request, grant: Writer, key: IdempotencyKey = None) -> JSONResponse:
    body = await _body(request, OpenBody)
    if body.overdraft_limit and Scope.MINT not in grant.scopes:
        raise AuthError(403, "insufficient_scope", "an overdraft limit needs the mint scope")
    command = OpenAccount(body.currency, overdraft_limit=body.overdraft_limit)
    return await _execute(request, grant, body.id, command, key, created=True)


@api.post(
    "/accounts/{account}/deposits",
    openapi_extra=_schema(AmountBody),
    summary="Deposit (scope mint: it creates money)",
)
async def deposit(
    request: Request, account: IdPath, grant: Minter, key: IdempotencyKey = None
) -> JSONResponse:
    body = await _body(request, AmountBody)
    return await _execute(request, grant, account, Deposit(body.amount), key)


@api.post(
    "/accounts/{account}/withdrawals",
    openapi_extra=_schema(AmountBody),
    summary="Withdraw",
)
async def withdraw(
    request: Request, account: IdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    body = await _body(request, AmountBody)
    return await _execute(request, grant, account, Withdraw(body.amount), key)


@api.post("/accounts/{account}/close", summary="Close an account")
async def close(
    request: Request, account: IdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    await _body(request, EmptyBody)
    return await _execute(request, grant, account, CloseAccount(), key)


@api.post(
    "/transfers",
    status_code=201,
    openapi_extra=_schema(TransferBody),
    summary="Transfer between accounts (the Idempotency-Key is the transfer id)",
)
async def transfer(request: Request, grant: Writer, key: IdempotencyKey = None) -> JSONResponse:
    body = await _body(request, TransferBody)
    if body.timeout_s is not None and not body.pending:
        raise ValueError("timeout_s is the expiry of a pending transfer: set pending too")
    timeout_ms = None if body.timeout_s is None else max(1, round(body.timeout_s * 1000))
    command = Transfer(body.target, body.amount, body.pending, timeout_ms)
    return await _execute(request, grant, body.source, command, key, created=True)


@api.post(
    "/transfers/{transfer_id}/post",
    openapi_extra=_schema(PostBody),
    summary="Complete a pending transfer (all it reserved, or less)",
)
async def post_pending(
    request: Request, transfer_id: IdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    body = await _body(request, PostBody)
    command = PostPending(transfer_id, body.amount)
    return await _execute(request, grant, body.source, command, key)


@api.post(
    "/transfers/{transfer_id}/void",
    openapi_extra=_schema(VoidBody),
    summary="Release a pending transfer",
)
async def void_pending(
    request: Request, transfer_id: IdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    body = await _body(request, VoidBody)
    return await _execute(request, grant, body.source, VoidPending(transfer_id), key)


@api.get(
    "/transfers/in-flight",
    summary="Transfers debited and not yet settled, oldest first, with their lost legs "
    "(those from the accounts the token is granted)",
)
def transfers_in_flight(
    request: Request, grant: Reader, older_than_s: Annotated[float, Query(ge=0, le=10**9)] = 0
) -> Response:
    rows = [
        row
        for row in _client(request).in_flight(older_than_ms=round(older_than_s * 1000))
        if grant.covers(row.source)
    ]
    return Response(msgspec.json.encode({"transfers": rows}), media_type="application/json")


@api.post(
    "/transfers/{transfer_id}/settle",
    openapi_extra=_schema(SettleBody),
    summary="Settle a transfer's lost leg (scope operate; recorded under the token's name)",
)
async def settle_transfer(request: Request, transfer_id: IdPath, grant: Operator) -> Response:
    body = await _body(request, SettleBody)
    grant.require(body.source)
    done = await run_in_threadpool(
        _client(request).settle,
        transfer_id,
        source=body.source,
        refund=body.action == "refund",
        operator=grant.name,
        reason=body.reason,
    )
    payload = {**msgspec.structs.asdict(done), "action": body.action}
    return Response(
        msgspec.json.encode(payload),
        status_code=200 if done.settled else 202,
        media_type="application/json",
    )


@api.get("/accounts/{account}", summary="The account, as committed")
def get_account(request: Request, account: IdPath, grant: Reader) -> Response:
    grant.require(account)
    view = _client(request).reads.view(account)
    if view is None:
        return problem(404, "unknown_account", "no such account", account=account)
    return JSONResponse({"account": account, **msgspec.to_builtins(view)})


@api.get("/accounts/{account}/history", summary="The account's events")
def history(
    request: Request,
    account: IdPath,
    grant: Reader,
    after_version: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:
    grant.require(account)
    page = _client(request).reads.history(account, after_version=after_version, limit=limit)
    return Response(msgspec.json.encode(page), media_type="application/json")


@api.get(
    "/accounts/{account}/state",
    summary="The account at a time (RFC 3339) or after a version",
)
def state(
    request: Request,
    account: IdPath,
    grant: Reader,
    at: Annotated[datetime | None, Query(description="A time, RFC 3339")] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    grant.require(account)
    if (at is None) == (version is None):
        return problem(422, "invalid_request", "give exactly one of 'at' and 'version'")
    found = _client(request).reads.state_at(account, at if at is not None else version)  # type: ignore[arg-type]
    if found is None:
        return problem(404, "unknown_account", "the account did not exist then", account=account)
    return Response(msgspec.json.encode(found), media_type="application/json")


@api.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@api.get("/readyz", summary="Every partition runs, and Kafka and Ray answer")
def readyz() -> Response:
    problems = _here().readiness()
    if problems:
        return problem(503, "not_ready", "; ".join(problems))
    return JSONResponse({"status": "ready"})
