"""The replica a process's routes run on, and what every route shares: its grants (the auth
dependencies), its path and header parameters, and the execution of one command.

Invariants:
- ``bind_replica`` is called once per process (by the Serve replica's constructor, see
  ``eventledger.http.serving``) before any route runs; an unbound route is a RuntimeError;
- a POST is one command sent under the token's name (its principal, recorded with the
  events); its command id is ``{principal}:{Idempotency-Key}`` (no key: a random one,
  returned in the answer), so a retry with the same key by the same token gets the first
  answer and is executed at most once (the service's idempotency window), and two tokens
  never share a command id;
- a ``traceparent`` header is the parent of the command's trace (the actor continues it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from opentelemetry import context as otel_context
from opentelemetry.propagate import extract

from actors.channel import OutcomeUnknownError
from eventledger.bank import BankClient
from eventledger.http.auth import AuthError, Grant, Scope, TokenTable
from eventledger.http.limits import RateLimiter
from eventledger.http.problems import problem, refusal_problem
from topology.ids import ID_PATTERN, ID_RULE, SCOPED_ID_PATTERN, scoped

__all__ = [
    "IdPath",
    "IdempotencyKey",
    "Minter",
    "Operator",
    "Reader",
    "Replica",
    "TransferIdPath",
    "Writer",
    "bind_replica",
    "bound_replica",
    "execute",
]


@dataclass(frozen=True)
class Replica:
    """What the routes of this process use: set once by the Serve replica's constructor.
    ``limiter`` bounds each principal's request rate on this replica (None: unbounded)."""

    client: BankClient
    tokens: TokenTable
    timeout: float
    readiness: Callable[[], list[str]]
    limiter: RateLimiter | None = field(default=None, compare=False)


_replica: list[Replica] = []


def bind_replica(replica: Replica) -> None:
    """Give this process's routes their client, tokens, command timeout and readiness check
    (a module function: the Serve deployment class is shipped by value, this module is not)."""
    _replica[:] = [replica]


def bound_replica() -> Replica:
    """The replica this process's routes are bound to (RuntimeError if none yet)."""
    if not _replica:
        raise RuntimeError("the routes are not bound to a replica")
    return _replica[0]


def _grant(scope: Scope) -> Callable[[Request], Awaitable[Grant]]:
    async def check(request: Request) -> Grant:
        replica = bound_replica()
        grant = replica.tokens.authorize(request.headers.get("authorization"), scope)
        if replica.limiter is not None:
            wait = replica.limiter.take(grant.name, time.monotonic())
            if wait is not None:
                raise AuthError(
                    429, "rate_limited", f"too many requests: retry in {wait} s", retry_after=wait
                )
        return grant

    return check


Reader = Annotated[Grant, Depends(_grant(Scope.READ))]
Writer = Annotated[Grant, Depends(_grant(Scope.WRITE))]
Minter = Annotated[Grant, Depends(_grant(Scope.MINT))]
Operator = Annotated[Grant, Depends(_grant(Scope.OPERATE))]
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
    parent = extract(dict(request.headers))
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
        return problem(
            504,
            "outcome_unknown",
            "no reply in time: the outcome is unknown. Retry with the same Idempotency-Key "
            f"({key}): it is executed at most once.",
            command_id=command_id,
            idempotency_key=key,
            first_attempt_ms=e.first_attempt_ms,
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
    return JSONResponse(body, status_code=201 if created else 200)
