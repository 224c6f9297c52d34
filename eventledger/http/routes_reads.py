"""The routes that read an account, as committed: its view, its events, its state at a time
or after a version (from the replica's ``BankClient.reads``; they send no command). Each read
runs on the replica's blocking executor with the read timeout (``Limits.read_timeout_s``).

The view answers with the position it was read at; ``min_version`` and ``at_least`` (a
reply's ``version`` and ``position``) ask for at least that state: the partition waits up to
its ``read_wait_ms`` for it, else 409 ``position_not_reached``. A position of another
partition than the account's is 422 ``invalid_request``, never ignored, in an application
without slots; with slots it may name where the account was before a move (``Reads.read``
drops it then: the owner's state has passed it). A standby of the
partition answers when it can (its writer otherwise); the ``Eventledger-Served-By`` header
says which. Views read without bounds go in batches per partition (``Replica.views``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from actors.reads import ForeignPositionError, PositionNotReachedError
from eventledger.http.problems import PROBLEMS, problem
from eventledger.http.replica import IdPath, Reader, blocking, bound_replica
from topology.codes import ReadCode
from topology.envelopes import Position
from topology.history import MAX_PAGE

__all__ = ["SERVED_BY_HEADER", "router"]

router = APIRouter()

SERVED_BY_HEADER = "Eventledger-Served-By"
"""Which member of the partition answered a view: ``writer`` or ``standby``."""


@router.get("/accounts/{account}", summary="The account, as committed")
async def get_account(
    account: IdPath,
    grant: Reader,
    min_version: Annotated[
        int, Query(ge=0, description="At least this version of the account (a reply's)")
    ] = 0,
    at_least: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]+:[0-9]+$",
            description="At least this position of the account's partition (a reply's "
            "`position`, `<partition>:<seq>`)",
        ),
    ] = None,
) -> Response:
    grant.require(account)
    replica = bound_replica()
    reads, timeout = replica.client.reads, replica.limits.read_timeout_s
    position = None if at_least is None else Position.parse(at_least)
    try:
        if min_version == 0 and position is None:  # no bounds: batched with other reads
            found = await replica.views.read(account)
        else:
            found = await blocking(
                lambda: reads.read(
                    account, min_version=min_version, at_least=position, timeout=timeout
                )
            )
    except ForeignPositionError:
        return problem(
            422,
            "invalid_request",
            f"position {position} is not of the account's partition",
            account=account,
        )
    except PositionNotReachedError as e:
        status, title = PROBLEMS[ReadCode.POSITION_NOT_REACHED]
        return problem(
            status,
            ReadCode.POSITION_NOT_REACHED,
            f"not reached in time: {e}",
            title=title,
            account=account,
            version=e.version,
            position=str(e.position),
        )
    if found.view is None:
        return problem(404, "unknown_account", "no such account", account=account)
    body = {"account": account, **msgspec.to_builtins(found.view)}
    return JSONResponse(
        {**body, "position": str(found.position)},
        headers={SERVED_BY_HEADER: str(found.served_by)},
    )


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
