"""The trace context a request brings: W3C Trace Context, checked before it is believed.

Invariants:
- only one ``traceparent`` header of version ``00``, a 32-digit trace id and a 16-digit
  parent id (lowercase hex, neither all zeros) and 2 hex digits of flags, is taken; anything
  else (another version, uppercase, spaces, a suffix, two headers) is ignored: the command
  starts a new trace. Never an error, and the value is never logged;
- ``tracestate`` is kept only beside a valid ``traceparent`` and only up to
  ``MAX_TRACESTATE`` characters in all (W3C's minimum to propagate); longer, it is dropped;
- ``baggage`` and any other propagator's header are never read from a request.

Why the caller's context becomes the parent rather than a span link: the routes read it only
after the bearer token is checked, so it comes from a service the operator issued a token
to; with it as the parent, a trace runs end to end from that service through the actors and
into the events' headers. What a token holder can do with it touches observability only
(its own requests' sampling, bounded by its rate limit; spans under a trace id it chose),
never the ledger. docs/http.md#tracing says the same for operators.
"""

from __future__ import annotations

import logging
import re
from typing import Final, Protocol

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["MAX_TRACESTATE", "parent_context"]

log = logging.getLogger(__name__)

MAX_TRACESTATE: Final = 512
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_PROPAGATOR = TraceContextTextMapPropagator()


class Headers(Protocol):
    """A request's headers (Starlette's ``Headers``): every value of a name."""

    def getlist(self, key: str) -> list[str]: ...


def parent_context(headers: Headers) -> Context:
    """The context to run a request's command in: the caller's trace as the parent when its
    ``traceparent`` is well formed, else an empty one (a new trace)."""
    parents = headers.getlist("traceparent")
    if len(parents) != 1 or _TRACEPARENT.fullmatch(parents[0]) is None:
        if parents:
            log.debug("a malformed traceparent was ignored: the command starts a new trace")
        return Context()
    carrier: dict[str, str] = {"traceparent": parents[0]}
    state = ",".join(headers.getlist("tracestate"))
    if state and len(state) <= MAX_TRACESTATE:
        carrier["tracestate"] = state
    return _PROPAGATOR.extract(carrier)
