"""The bound on requests a process takes on when no Ray Serve proxy queues them for it (the
``uvicorn`` serving mode): an ASGI middleware around the whole app.

Invariants: at most ``Limits.max_ongoing`` requests run in the app at once and at most
``Limits.max_queued`` more wait for a slot, in arrival order; any request beyond is answered
at once 503 ``unavailable`` with ``Retry-After: queue_retry_after_s`` (a problem body), so a
flood cannot grow memory without end. The probes (``/healthz``, ``/readyz``) are never
queued: they answer while every slot is taken. One per event loop (not thread-safe).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from eventledger.http.limits import Limits
from eventledger.http.problems import problem

__all__ = ["Admission"]

_PROBES = frozenset({"/healthz", "/readyz"})


class Admission:
    """The middleware: wraps ``app`` with ``limits``' bounds."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app, self.limits = app, limits
        self._slots = asyncio.Semaphore(limits.max_ongoing)
        self._running = 0  # requests holding a slot (Semaphore.locked() scans its waiters)
        self._waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _PROBES:
            await self.app(scope, receive, send)
            return
        full = self._running >= self.limits.max_ongoing
        if full and self._waiting >= self.limits.max_queued:
            retry = str(self.limits.queue_retry_after_s)
            refusal = problem(
                503,
                "unavailable",
                "too many requests in progress: retry shortly",
                headers={"Retry-After": retry},
            )
            await refusal(scope, receive, send)
            return
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._running -= 1
            self._slots.release()
