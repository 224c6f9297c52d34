"""The routes that read an account, as committed: its view, its events, its state at a time
or after a version (from the replica's ``BankClient.reads``; they send no command). Each read
runs on the replica's blocking executor with the read timeout (``Limits.read_timeout_s``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from eventledger.http.problems import problem
from eventledger.http.replica import IdPath, Reader, blocking, bound_replica
from topology.history import MAX_PAGE

__all__ = ["router"]

router = APIRouter()


@router.get("/accounts/{account}", summary="The account, as committed")
async def get_account(account: IdPath, grant: Reader) -> Response:
    grant.require(account)
    replica = bound_replica()
    reads, timeout = replica.client.reads, replica.limits.read_timeout_s
    view = await blocking(lambda: reads.view(account, timeout=timeout))
    if view is None:
        return problem(404, "unknown_account", "no such account", account=account)
    return JSONResponse({"account": account, **msgspec.to_builtins(view)})


@router.get("/accounts/{account}/history", summary="The account's events")
async def history(
    account: IdPath,
    grant: Reader,
    after_version: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:
    grant.require(account)
    replica = bound_replica()
    reads, timeout = replica.client.reads, replica.limits.read_timeout_s
    page = await blocking(
        lambda: reads.history(account, after_version=after_version, limit=limit, timeout=timeout)
    )
    return Response(msgspec.json.encode(page), media_type="application/json")


@router.get(
    "/accounts/{account}/state",
    summary="The account at a time (RFC 3339) or after a version",
)
async def state(
    account: IdPath,
    grant: Reader,
    at: Annotated[datetime | None, Query(description="A time, RFC 3339")] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    grant.require(account)
    if (at is None) == (version is None):
        return problem(422, "invalid_request", "give exactly one of 'at' and 'version'")
    replica = bound_replica()
    reads, timeout = replica.client.reads, replica.limits.read_timeout_s
    when: datetime | int = at if at is not None else version  # type: ignore[assignment]
    found = await blocking(lambda: reads.state_at(account, when, timeout=timeout))
    if found is None:
        return problem(404, "unknown_account", "the account did not exist then", account=account)
    return Response(msgspec.json.encode(found), media_type="application/json")
