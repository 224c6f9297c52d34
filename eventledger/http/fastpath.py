"""The busiest routes served without FastAPI's routing and parameter solving: an ASGI
middleware inside the app's ``Deadline`` (so every deadline still holds).

A request to one of ``HOT`` reaches that route's own endpoint function, the one FastAPI
serves, with the route's own grant check (its ``Bearer`` dependency, found in the route's
declaration at start: its scope is never restated here); only the extraction of the
parameters is done here instead of by FastAPI, which costs a request about as much again
as the rest of the app.

Invariants:
- a request is taken only when its parameters are exactly what FastAPI would pass: the path
  id and an ``Idempotency-Key`` (at most one) within the id rule, no query string, no root
  path; anything else (another route or method, a malformed parameter) goes to FastAPI,
  which answers it as it always did (its 401, 403, 422 in its order);
- the grant is checked before the endpoint runs, as FastAPI runs the route's dependency
  first; the endpoint checks the account (``Grant.require``) itself, in both paths;
- an exception is answered by the app's own handlers (``EXCEPTION_HANDLERS``: the first
  class of its MRO that has one), as FastAPI's exception middleware would.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from eventledger.http.errors import EXCEPTION_HANDLERS
from eventledger.http.replica import Bearer
from topology.ids import ID_PATTERN

__all__ = ["HOT", "FastRoutes"]

HOT: Final = (
    ("POST", "/accounts/{account}/deposits"),
    ("POST", "/accounts/{account}/withdrawals"),
    ("GET", "/accounts/{account}"),
)
"""The routes served here: (method, path as declared)."""

_PREFIX: Final = "/accounts/"
_ID = re.compile(ID_PATTERN)
_GIVEN = frozenset({"request", "account", "grant", "key"})  # what this passes an endpoint


@dataclass(frozen=True)
class _Hot:
    endpoint: Callable[..., Awaitable[Response]]
    bearer: Bearer
    takes: frozenset[str]  # the names of _GIVEN the endpoint takes


class FastRoutes:
    """The middleware: wraps ``app`` (the app's router and exception middleware), serving
    the ``HOT`` routes among ``routes`` (the app's, all included)."""

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self._hot: dict[tuple[str, str], _Hot] = {}  # (method, the path after the account)
        declared = {
            (method, r.path): r
            for r in routes
            if isinstance(r, APIRoute)
            for method in r.methods or ()
        }
        for method, path in HOT:
            prefix, _, suffix = path.partition("{account}")
            if prefix != _PREFIX:
                raise ValueError(f"{path}: a hot route's path starts with {_PREFIX}{{account}}")
            self._hot[(method, suffix)] = _hot(declared[(method, path)])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self._match(scope)
        if hot is None:
            await self.app(scope, receive, send)
            return
        route, account, key = hot
        request = Request(scope, receive)
        given: dict[str, object] = {"request": request, "account": account, "key": key}
        try:
            given["grant"] = await route.bearer(request)
            response = await route.endpoint(**{k: given[k] for k in route.takes})
        except Exception as e:
            handlers = EXCEPTION_HANDLERS
            handler = next(handlers[c] for c in type(e).__mro__ if c in handlers)
            response = await handler(request, e)
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[_Hot, str, str | None] | None:
        """The hot route, account and Idempotency-Key of a request taken here, else None."""
        if scope["type"] != "http" or scope.get("query_string") or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not path.startswith(_PREFIX):
            return None
        account, slash, tail = path[len(_PREFIX) :].partition("/")
        route = self._hot.get((scope["method"], slash + tail))
        if route is None or _ID.fullmatch(account) is None:
            return None
        keys = [v for k, v in scope["headers"] if k.lower() == b"idempotency-key"]
        if len(keys) > 1:
            return None
        key = keys[0].decode("latin-1") if keys else None
        if key is not None and ("key" not in route.takes or _ID.fullmatch(key) is None):
            return None
        return route, account, key


def _hot(route: APIRoute) -> _Hot:
    """What serving ``route`` here needs; ValueError when its endpoint takes a parameter
    this cannot give it (one without a default outside ``_GIVEN``)."""
    bearers = [d.call for d in route.dependant.dependencies if isinstance(d.call, Bearer)]
    if len(bearers) != 1:
        raise ValueError(f"{route.path}: a hot route has exactly one Bearer dependency")
    takes = set()
    for name, param in inspect.signature(route.endpoint).parameters.items():
        if name in _GIVEN:
            takes.add(name)
        elif param.default is inspect.Parameter.empty:
            raise ValueError(f"{route.path}: its parameter {name!r} cannot be given here")
    if "grant" not in takes:
        raise ValueError(f"{route.path}: a hot route takes its grant")
    return _Hot(route.endpoint, bearers[0], frozenset(takes))
