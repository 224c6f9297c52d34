"""The HTTP API (FastAPI) over the replica's ``BankClient``: ``api``, its OpenAPI metadata
(with the bearer security scheme: each route names its scope), its exception handlers
(``errors``), the deadline of every request (``deadlines``), the busiest routes served
without FastAPI's parameter solving (``fastpath``) and its routers, included in this
order (the order of OpenAPI's paths): accounts, transfers, reads, health.

The routes read the replica they run on from ``eventledger.http.replica`` (bound at the
process's start, ``eventledger.http.startup``, in every serving mode of
``eventledger.http.serving``; one process per replica). Every answer that is not a success is
an RFC 9457 problem.

FastAPI's own OpenTelemetry instrumentation is off: it would take a request's
``traceparent`` before the bearer token is checked, where the routes take it only after
(``eventledger.http.tracing``), and it costs every request its checks.
"""

from __future__ import annotations

from fastapi import FastAPI

from eventledger.http import routes_accounts, routes_health, routes_reads, routes_transfers
from eventledger.http.deadlines import Deadline
from eventledger.http.errors import EXCEPTION_HANDLERS
from eventledger.http.fastpath import FastRoutes

__all__ = ["api"]

api = FastAPI(
    title="eventledger",
    summary="An event-sourced ledger: accounts, their history and their state at a time.",
    description=(
        "Money is an integer of minor units (a JSON number or a string of digits). "
        "Errors are RFC 9457 problem details. Authenticate with `Authorization: Bearer "
        "<token>` (scopes `read`, `write`, `mint`, `operate`; each route names its own). A "
        "POST's `Idempotency-Key` is its command id: after a 504 `outcome_unknown`, retry "
        "with the same key (it is executed at most once)."
    ),
    version="1",
    exception_handlers=EXCEPTION_HANDLERS,
    telemetry={"tracing": False, "metrics": False, "logs": False},
)
_ROUTERS = [m.router for m in (routes_accounts, routes_transfers, routes_reads, routes_health)]
for _router in _ROUTERS:
    api.include_router(_router)
# inside the Deadline (added first); the routers are included without a prefix
api.add_middleware(FastRoutes, routes=[r for router in _ROUTERS for r in router.routes])
api.add_middleware(Deadline)
