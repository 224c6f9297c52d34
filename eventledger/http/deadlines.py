"""Every request ends by its deadline: an ASGI middleware around the whole app.

A request runs for at most its replica's ``deadline_s(method)`` (``Limits``: a POST its
command's timeout plus a margin, anything else the read timeout plus the margin). At the
deadline the request's work is cancelled and, if no answer has begun, it is answered with
``timeout_problem``: 504 ``outcome_unknown`` with the retry rule for a POST, 504 ``timeout``
otherwise. The deadline covers everything the replica does for the request, reading its
body included, so a client that sends a body slowly holds a replica's slot only that long.

The inner timeouts come first on the usual paths (a command's reply wait, a read's Ray
timeout), with their own answers; this is the bound for the rest (a slow body, a call queued
for a blocking thread, a Kafka scan, a lookup that hangs).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventledger.http.errors import timeout_problem
from eventledger.http.limits import Limits
from eventledger.http.replica import bound_replica

__all__ = ["Deadline"]

log = logging.getLogger(__name__)

_UNBOUND_COMMAND_TIMEOUT_S = 10.0  # only before a replica is bound (its routes then fail)


class Deadline:
    """The middleware: wraps ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        seconds = _deadline_s(method)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                await self.app(scope, receive, tracked)
        except TimeoutError:
            if not deadline.expired():
                raise
            log.warning("%s %r passed its deadline of %.1f s", method, scope["path"], seconds)
            if started:  # an answer has begun: it cannot become a 504 any more
                return
            key = _header(scope, b"idempotency-key")
            await timeout_problem(method, key)(scope, receive, send)


def _deadline_s(method: str) -> float:
    try:
        return bound_replica().deadline_s(method)
    except RuntimeError:
        return Limits().deadline_s(method, _UNBOUND_COMMAND_TIMEOUT_S)


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v for k, v in scope["headers"] if k.lower() == name]
    return values[0].decode("latin-1") if len(values) == 1 else None
