"""The replica a process's routes run on, and what every route shares: its grants (the auth
dependencies), its path and header parameters, and the execution of one command.

Invariants:
- ``bind_replica`` is called once per process (by ``eventledger.http.startup.open_replica``,
  in a Serve replica's or a uvicorn worker's constructor) before any route runs; an unbound
  route is a RuntimeError;
- a POST is one command sent under the token's name (its principal, recorded with the
  events); its command id is ``{principal}:{Idempotency-Key}`` (no key: a random one,
  returned in the answer), so a retry with the same key by the same token gets the first
  answer and is executed at most once (the service's idempotency window), and two tokens
  never share a command id;
- a well-formed W3C ``traceparent`` header of an authenticated request is the parent of the
  command's trace (the actor continues it); anything else starts a new trace
  (``eventledger.http.tracing``);
- blocking calls (Ray reads, Kafka scans) run on the replica's own bounded executor
  (``blocking``), never on the event loop, so a request past its deadline is answered at it
  (``eventledger.http.deadlines``) and health checks never wait behind them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, TypeVar

from fastapi import Header, Path, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from opentelemetry import context as otel_context

from actors.channel import OutcomeUnknownError
from eventledger.bank import BankClient
from eventledger.http.auth import AuthError, Grant, Scope, TokenTable
from eventledger.http.errors import timeout_problem
from eventledger.http.limits import Limits, RateLimiter
from eventledger.http.problems import refusal_problem
from eventledger.http.tracing import parent_context
from eventledger.http.view_batches import ViewBatches
from topology.ids import ID_PATTERN, ID_RULE, SCOPED_ID_PATTERN, scoped

__all__ = [
    "Bearer",
    "IdPath",
    "IdempotencyKey",
    "Minter",
    "Operator",
    "Reader",
    "Replica",
    "TransferIdPath",
    "Writer",
    "bind_replica",
    "blocking",
    "bound_replica",
    "execute",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Replica:
    """What the routes of this process use: set once at the process's start.
    ``timeout`` is how long a command waits for its reply; ``readiness`` answers at once
    (what is not ready: empty when ready); ``limiter`` bounds each principal's request rate
    on this replica (None: unbounded); ``limits`` the deadlines and the blocking threads."""

    client: BankClient
    tokens: TokenTable
    timeout: float
    readiness: Callable[[], list[str]]
    limiter: RateLimiter | None = field(default=None, compare=False)
    limits: Limits = field(default_factory=Limits)
    executor: ThreadPoolExecutor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pool = ThreadPoolExecutor(self.limits.blocking_threads, thread_name_prefix="http-blocking")
        object.__setattr__(self, "executor", pool)

    @cached_property
    def views(self) -> ViewBatches:
        """The views read without bounds, batched per partition (on the replica's loop)."""
        return ViewBatches(self.client.reads, blocking, self.limits.read_timeout_s)

    def deadline_s(self, method: str) -> float:
        """The seconds a request of ``method`` may take on this replica."""
        return self.limits.deadline_s(method, self.timeout)


_replica: list[Replica] = []


def bind_replica(replica: Replica) -> None:
    """Give this process's routes their client, tokens, command timeout and readiness check
    (a module function: a Serve deployment class is shipped by value, this module is not)."""
    _replica[:] = [replica]


def bound_replica() -> Replica:
    """The replica this process's routes are bound to (RuntimeError if none yet)."""
    if not _replica:
        raise RuntimeError("the routes are not bound to a replica")
    return _replica[0]


async def blocking(call: Callable[[], T]) -> T:
    """``call()`` on the replica's blocking executor. Cancelled (a deadline), the request goes
    on without it: a call not begun never runs, one running ends by its own timeout while the
    executor bounds how many run."""
    return await asyncio.get_running_loop().run_in_executor(bound_replica().executor, call)


class Bearer(HTTPBearer):
    """The security scheme of OpenAPI (``bearer``) that is also the check of a route's
    ``scope``: the token table (``TokenTable.authorize``) judges the header itself (a
    missing or malformed one is the table's 401), then the principal's rate is taken. One
    dependency per route, so a request pays FastAPI's dependency solving once."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(
            scheme_name="bearer",
            bearerFormat="an eventledger token",
            description="`Authorization: Bearer <token>`: a token from `eventledger token`, "
            "with scopes (read, write, mint, operate) and account patterns. Each route names "
            "the scope it needs.",
            auto_error=False,
        )
        self.scope = scope

    async def __call__(self, request: Request) -> Grant:  # type: ignore[override]
        replica = bound_replica()
        grant = replica.tokens.authorize(request.headers.get("authorization"), self.scope)
        if replica.limiter is not None:
            wait = replica.limiter.take(grant.name, time.monotonic())
            if wait is not None:
                raise AuthError(
                    429, "rate_limited", f"too many requests: retry in {wait} s", retry_after=wait
                )
        return grant


Reader = Annotated[Grant, Security(Bearer(Scope.READ), scopes=[Scope.READ])]
Writer = Annotated[Grant, Security(Bearer(Scope.WRITE), scopes=[Scope.WRITE])]
Minter = Annotated[Grant, Security(Bearer(Scope.MINT), scopes=[Scope.MINT])]
Operator = Annotated[Grant, Security(Bearer(Scope.OPERATE), scopes=[Scope.OPERATE])]
IdPath = Annotated[str, Path(pattern=f"^{ID_PATTERN}$", description=ID_RULE)]
TransferIdPath = Annotated[
    str,
    Path(
        pattern=f"^{SCOPED_ID_PATTERN}$",
        description="The transfer's id, as its creation answered it "
        "(`{principal}:{Idempotency-Key}`)",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=f"^{ID_PATTERN}$",
        description="The command's idempotency key, scoped by the token: a retry with the "
        "same key by the same token is executed at most once. " + ID_RULE,
    ),
]


async def execute(
    request: Request,
    grant: Grant,
    account: str,
    command: Any,
    key: str | None,
    *,
    created: bool = False,
) -> JSONResponse:
    """Send one command on ``account`` (which ``grant`` must cover: 403 otherwise) as the
    grant's principal, with the request's trace as parent; its reply as JSON, or a problem.
    A refusal's detail can name balances, so a token that may not read the account gets only
    the refusal's title."""
    grant.require(account)
    replica = bound_replica()
    key = key or replica.client.new_command_id()
    command_id = scoped(grant.name, key)
    parent = parent_context(request.headers)
    token = otel_context.attach(parent)
    try:
        reply = await replica.client.execute_async(
            account,
            command,
            command_id=command_id,
            timeout=replica.timeout,
            principal=grant.name,
        )
    except OutcomeUnknownError as e:
        return timeout_problem(
            "POST", key, command_id=command_id, first_attempt_ms=e.first_attempt_ms
        )
    finally:
        otel_context.detach(token)
    if not reply.accepted:
        return refusal_problem(
            reply, command_id=command_id, account=account, detailed=Scope.READ in grant.scopes
        )
    body = {
        "account": account,
        "command_id": command_id,
        "idempotency_key": key,
        "version": reply.version,
    }
    if reply.position is not None:  # where its commit put the partition: read at least it
        body["position"] = str(reply.position)
    return JSONResponse(body, status_code=201 if created else 200)
