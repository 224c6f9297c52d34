"""The routes that change an account: open, deposit, withdraw, close (one command each)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from eventledger.http.auth import AuthError, Scope
from eventledger.http.bodies import AmountBody, EmptyBody, OpenBody, body_schema, read_body
from eventledger.http.replica import IdempotencyKey, IdPath, Minter, Writer, execute
from ledger.commands import CloseAccount, Deposit, OpenAccount, Withdraw

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/accounts",
    status_code=201,
    openapi_extra=body_schema(OpenBody),
    summary="Open an account (scope write; with an overdraft limit, mint too)",
)
async def open_account(request: Request, grant: Writer, key: IdempotencyKey = None) -> JSONResponse:
    body = await read_body(request, OpenBody)
    if body.overdraft_limit and Scope.MINT not in grant.scopes:
        raise AuthError(403, "insufficient_scope", "an overdraft limit needs the mint scope")
    command = OpenAccount(body.currency, overdraft_limit=body.overdraft_limit)
    return await execute(request, grant, body.id, command, key, created=True)


@router.post(
    "/accounts/{account}/deposits",
    openapi_extra=body_schema(AmountBody),
    summary="Deposit (scope mint: it creates money)",
)
async def deposit(
    request: Request, account: IdPath, grant: Minter, key: IdempotencyKey = None
) -> JSONResponse:
    body = await read_body(request, AmountBody)
    return await execute(request, grant, account, Deposit(body.amount), key)


@router.post(
    "/accounts/{account}/withdrawals",
    openapi_extra=body_schema(AmountBody),
    summary="Withdraw",
)
async def withdraw(
    request: Request, account: IdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    body = await read_body(request, AmountBody)
    return await execute(request, grant, account, Withdraw(body.amount), key)


@router.post("/accounts/{account}/close", summary="Close an account")
async def close(
    request: Request, account: IdPath, grant: Writer, key: IdempotencyKey = None
) -> JSONResponse:
    await read_body(request, EmptyBody)
    return await execute(request, grant, account, CloseAccount(), key)
