"""The routes of transfers: transfer, post or void a pending one, list those in flight, and
settle a lost leg (an operator's act, recorded under the token's name). The list and the
settlement read Kafka: they run on the replica's blocking executor."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from eventledger.http.bodies import (
    BodyError,
    PostBody,
    SettleBody,
    TransferBody,
    VoidBody,
    body_schema,
    read_body,
)
from eventledger.http.replica import (
    IdempotencyKey,
    Operator,
    Reader,
    TransferIdPath,
    Writer,
    blocking,
    bound_replica,
    execute,
)
from ledger.commands import PostPending, Transfer, VoidPending

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/transfers",
    status_code=201,
    openapi_extra=body_schema(TransferBody),
    summary="Transfer between accounts (the answer's command_id is the transfer id)",
)
async def transfer(request: Request, grant: Writer, key: IdempotencyKey = None) -> JSONResponse:
    body = await read_body(request, TransferBody)
    if body.timeout_s is not None and not body.pending:
        raise BodyError(
            422, "invalid_request", "timeout_s is the expiry of a pending transfer: set pending too"
        )
    timeout_ms = None if body.timeout_s is None else max(1, round(body.timeout_s * 1000))
    command = Transfer(body.target, body.amount, body.pending, timeout_ms)
    return await execute(request, grant, body.source, command, key, created=True)


@router.post(
    "/transfers/{transfer_id}/post",
    openapi_extra=body_schema(PostBody),
    summary="Complete a pending transfer (all it reserved, or less)",
)
async def post_pending(
    request: Request, transfer_id: TransferIdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    body = await read_body(request, PostBody)
    command = PostPending(transfer_id, body.amount)
    return await execute(request, grant, body.source, command, key)


@router.post(
    "/transfers/{transfer_id}/void",
    openapi_extra=body_schema(VoidBody),
    summary="Release a pending transfer",
)
async def void_pending(
    request: Request, transfer_id: TransferIdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    body = await read_body(request, VoidBody)
    return await execute(request, grant, body.source, VoidPending(transfer_id), key)


@router.get(
    "/transfers/in-flight",
    summary="Transfers debited and not yet settled, oldest first, with their lost legs "
    "(those from the accounts the token is granted)",
)
async def transfers_in_flight(
    grant: Reader, older_than_s: Annotated[float, Query(ge=0, le=10**9)] = 0
) -> Response:
    client = bound_replica().client
    found = await blocking(lambda: client.in_flight(older_than_ms=round(older_than_s * 1000)))
    rows = [row for row in found if grant.covers(row.source)]
    return Response(msgspec.json.encode({"transfers": rows}), media_type="application/json")


@router.post(
    "/transfers/{transfer_id}/settle",
    openapi_extra=body_schema(SettleBody),
    summary="Settle a transfer's lost leg (scope operate; recorded under the token's name)",
)
async def settle_transfer(
    request: Request, transfer_id: TransferIdPath, grant: Operator
) -> Response:
    body = await read_body(request, SettleBody)
    grant.require(body.source)
    replica = bound_replica()
    done = await blocking(
        lambda: replica.client.settle(
            transfer_id,
            source=body.source,
            refund=body.action == "refund",
            operator=grant.name,
            reason=body.reason,
            wait_s=replica.timeout,
        )
    )
    payload = {**msgspec.structs.asdict(done), "action": body.action}
    return Response(
        msgspec.json.encode(payload),
        status_code=200 if done.settled else 202,
        media_type="application/json",
    )
