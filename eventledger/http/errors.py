"""How the HTTP API answers an exception: always an RFC 9457 problem, never a stack trace.

``EXCEPTION_HANDLERS`` is given to the app at construction; Starlette picks a handler by the
exception's class hierarchy, so ``Exception`` catches only what nothing closer does (logged
here as unexpected: a 500 that may be retried).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from actors.history import HistoryBehindError
from eventledger.http.auth import AuthError
from eventledger.http.bodies import BodyError
from eventledger.http.problems import problem
from eventledger.transfers import SettlementError, SettlementRefusal
from topology.history import HistoryDeadlineError

__all__ = ["EXCEPTION_HANDLERS", "SETTLEMENT_STATUS"]

log = logging.getLogger(__name__)

SETTLEMENT_STATUS: Final[dict[SettlementRefusal, int]] = {
    SettlementRefusal.INVALID_REQUEST: 422,
    SettlementRefusal.NOT_LOST: 409,
    SettlementRefusal.UNKNOWN_TRANSFER: 404,
}


async def _auth_error(_: Request, e: AuthError) -> Response:
    if e.retry_after is not None:
        return problem(e.status, e.code, e.message, headers={"Retry-After": str(e.retry_after)})
    challenge = "Bearer" if e.code == "unauthenticated" else f'Bearer error="{e.code}"'
    return problem(e.status, e.code, e.message, headers={"WWW-Authenticate": challenge})


async def _body_error(_: Request, e: BodyError) -> Response:
    return problem(e.status, e.code, e.detail)


async def _validation_error(_: Request, e: RequestValidationError) -> Response:
    detail = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5]
    )
    return problem(422, "invalid_request", detail)


async def _http_error(_: Request, e: HTTPException) -> Response:
    return problem(e.status_code, f"http_{e.status_code}", str(e.detail), headers=e.headers)


async def _behind(_: Request, e: HistoryBehindError) -> Response:
    return problem(503, "history_behind", str(e), headers={"Retry-After": "1"})


async def _past_deadline(_: Request, e: HistoryDeadlineError) -> Response:
    return problem(503, "history_deadline", str(e), headers={"Retry-After": "1"})


async def _settlement_refused(_: Request, e: SettlementError) -> Response:
    return problem(SETTLEMENT_STATUS[e.code], e.code, str(e))


async def _value_error(_: Request, e: ValueError) -> Response:
    return problem(422, "invalid_request", str(e))


async def _unexpected(_: Request, e: Exception) -> Response:
    log.exception("unexpected error")
    return problem(500, "internal", f"{type(e).__name__}: the request failed; it may be retried")


EXCEPTION_HANDLERS: Final[
    dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]]
] = {
    AuthError: _auth_error,
    BodyError: _body_error,
    RequestValidationError: _validation_error,
    HTTPException: _http_error,
    HistoryBehindError: _behind,
    HistoryDeadlineError: _past_deadline,
    SettlementError: _settlement_refused,
    ValueError: _value_error,
    Exception: _unexpected,
}
