"""The HTTP API (FastAPI) over the replica's ``BankClient``: ``api``, its OpenAPI metadata
(with the bearer security scheme: each route names its scope), its exception handlers
(``errors``), the deadline of every request (``deadlines``) and its routers, included in this
order (the order of OpenAPI's paths): accounts, transfers, reads, health.

The routes read the replica they run on from ``eventledger.http.replica`` (bound at the
process's start, ``eventledger.http.startup``, in every serving mode of
``eventledger.http.serving``; one process per replica). Every answer that is not a success is
an RFC 9457 problem.
"""

from __future__ import annotations

from fastapi import FastAPI

from eventledger.http import routes_accounts, routes_health, routes_reads, routes_transfers
from eventledger.http.deadlines import Deadline
from eventledger.http.errors import EXCEPTION_HANDLERS

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
)
api.add_middleware(Deadline)
for _routes in (routes_accounts, routes_transfers, routes_reads, routes_health):
    api.include_router(_routes.router)
