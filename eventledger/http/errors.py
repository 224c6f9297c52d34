"""How the HTTP API answers an exception: always an RFC 9457 problem, never a stack trace.

``EXCEPTION_HANDLERS`` is given to the app at construction; Starlette picks a handler by the
exception's class hierarchy (the first class of its MRO that has one), and so does
``failure_of`` in ``INFRASTRUCTURE``.

Invariants:
- 4xx answers come from the request's own faults only, each of its own type: a token
  (``AuthError``), a body (``BodyError``), a parameter (``RequestValidationError``), a
  settlement (``SettlementError``). No handler turns a plain ``ValueError`` into a 422;
- an infrastructure failure (``INFRASTRUCTURE``: Ray, Kafka, the network, a deadline) is a
  503 ``unavailable`` (with ``Retry-After``) or a 504, with a generic body that names no
  actor, broker, exception class or stack; the reason goes to this module's log;
- a POST that times out is 504 ``outcome_unknown`` with the retry rule (the same
  Idempotency-Key is executed at most once); any other request that times out is 504
  ``timeout`` (a read changes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final, NamedTuple

from confluent_kafka import KafkaException
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray.exceptions import GetTimeoutError, RayError
from starlette.exceptions import HTTPException

from actors.history import HistoryBehindError
from actors.kafka import KafkaClientError
from eventledger.http.auth import AuthError
from eventledger.http.bodies import BodyError
from eventledger.http.problems import problem
from eventledger.transfers import SettlementError, SettlementRefusal
from topology.history import HistoryDeadlineError
from topology.ids import ID_RULE, is_id

__all__ = [
    "EXCEPTION_HANDLERS",
    "INFRASTRUCTURE",
    "SETTLEMENT_STATUS",
    "Failure",
    "failure_of",
    "timeout_problem",
]

log = logging.getLogger(__name__)

SETTLEMENT_STATUS: Final[dict[SettlementRefusal, int]] = {
    SettlementRefusal.INVALID_REQUEST: 422,
    SettlementRefusal.NOT_LOST: 409,
    SettlementRefusal.UNKNOWN_TRANSFER: 404,
}


class Failure(NamedTuple):
    """The answer to an infrastructure failure: generic, the same whatever the cause."""

    status: int
    code: str
    detail: str
    retry_after: int | None = None


_UNAVAILABLE = Failure(503, "unavailable", "the service cannot answer now: retry shortly", 1)
_TIMEOUT = Failure(504, "timeout", "no answer in time; a read changes nothing: retry")
_BEHIND = Failure(503, "history_behind", "the account's history is catching up: retry", 1)
_DEADLINE = Failure(503, "history_deadline", "the history query ran out of time: retry", 1)

INFRASTRUCTURE: Final[Mapping[type[Exception], Failure]] = {
    GetTimeoutError: _TIMEOUT,  # a Ray call not answered in time (a RayError too: first)
    HistoryBehindError: _BEHIND,  # the history index has not reached the log's end yet
    HistoryDeadlineError: _DEADLINE,  # a history query folded past its deadline
    TimeoutError: _TIMEOUT,  # any other deadline (a POST's: outcome_unknown)
    RayError: _UNAVAILABLE,  # an actor dead, restarting or unschedulable; Ray itself
    ValueError: _UNAVAILABLE,  # Ray's "actor not found" (a partition or index not running)
    KafkaException: _UNAVAILABLE,  # the broker does not answer
    KafkaClientError: _UNAVAILABLE,  # the same, in the service's own taxonomy
    BufferError: _UNAVAILABLE,  # the producer's queue is full
    RuntimeError: _UNAVAILABLE,  # a replica not bound yet, a settlement Kafka did not store
    OSError: _UNAVAILABLE,  # the network
}
"""Every infrastructure exception class the API answers for, with its answer."""


def failure_of(e: BaseException) -> Failure | None:
    """The entry of ``INFRASTRUCTURE`` for ``e``: its first class (in MRO order) that has one."""
    return next((INFRASTRUCTURE[c] for c in type(e).__mro__ if c in INFRASTRUCTURE), None)


def timeout_problem(method: str, idempotency_key: str | None, **extra: Any) -> JSONResponse:
    """The 504 of a request that ran out of time: for a POST ``outcome_unknown`` with the
    retry rule naming its key (as ``idempotency_key`` too, when it is a valid one), else
    ``timeout``. ``extra`` members are added (the command id and first attempt, where the
    caller knows them: before the token is checked the scoped command id is unknown)."""
    if method != "POST":
        return problem(_TIMEOUT.status, _TIMEOUT.code, _TIMEOUT.detail)
    key = idempotency_key if idempotency_key and is_id(idempotency_key) else None
    if key is None:
        detail = (
            "no answer in time: the outcome is unknown. A request sent without an "
            "Idempotency-Key cannot be retried safely: send one."
        )
        return problem(504, "outcome_unknown", detail, **extra)
    detail = (
        "no answer in time: the outcome is unknown. Retry with the same Idempotency-Key "
        f"({key}): it is executed at most once."
    )
    return problem(504, "outcome_unknown", detail, idempotency_key=key, **extra)


async def _infrastructure(request: Request, e: Exception) -> Response:
    failure = failure_of(e) or _UNAVAILABLE
    log.warning(
        "%s %r answered %d %s: %s: %s",
        request.method,
        request.url.path,
        failure.status,
        failure.code,
        type(e).__name__,
        e,
        exc_info=not isinstance(e, TimeoutError),
    )
    if failure.status == 504:
        return timeout_problem(request.method, request.headers.get("idempotency-key"))
    headers = None if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
    return problem(failure.status, failure.code, failure.detail, headers=headers)


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


async def _http_error(request: Request, e: HTTPException) -> Response:
    raw_path: bytes = request.scope.get("raw_path") or b""
    if e.status_code == 404 and b"%2f" in raw_path.lower():
        # the server routes on the decoded path: an id with an encoded '/' matches no route
        return problem(422, "invalid_request", f"an id in the path has a '/': {ID_RULE}")
    return problem(e.status_code, f"http_{e.status_code}", str(e.detail), headers=e.headers)


async def _settlement_refused(_: Request, e: SettlementError) -> Response:
    return problem(SETTLEMENT_STATUS[e.code], e.code, str(e))


async def _unexpected(request: Request, _: Exception) -> Response:
    log.exception("%s %r: unexpected error", request.method, request.url.path)
    return problem(500, "internal", "the request failed; it may be retried")


EXCEPTION_HANDLERS: Final[
    dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]]
] = {
    AuthError: _auth_error,
    BodyError: _body_error,
    RequestValidationError: _validation_error,
    HTTPException: _http_error,
    SettlementError: _settlement_refused,
    **dict.fromkeys(INFRASTRUCTURE, _infrastructure),
    Exception: _unexpected,
}
