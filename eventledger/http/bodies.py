"""The request bodies of the HTTP API: pydantic models, money, and reading a body.

Invariants:
- a body is read up to ``MAX_BODY_BYTES`` and parsed by pydantic's JSON parser (bounded
  nesting): a hostile body is a 4xx problem (``BodyError``), never a crash of the replica;
- money is an integer of minor units, given as a JSON number or a string of digits (never
  a float), at most ``MAX_MINOR_UNITS`` either way;
- a route that reads its body itself declares it with ``body_schema``, so OpenAPI shows it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ledger.state import MAX_MINOR_UNITS
from topology.ids import ID_PATTERN, ID_RULE

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PENDING_TIMEOUT_S",
    "AmountBody",
    "BodyError",
    "EmptyBody",
    "OpenBody",
    "PostBody",
    "SettleBody",
    "TransferBody",
    "VoidBody",
    "body_schema",
    "read_body",
]

MAX_BODY_BYTES: Final = 16 * 1024
MAX_PENDING_TIMEOUT_S: Final = 30 * 24 * 3600.0  # a reservation lasts at most 30 days
_DIGITS = re.compile(r"-?[0-9]{1,19}")


def _money(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("money is an integer of minor units: a JSON number or a string")
    if isinstance(value, str):
        if _DIGITS.fullmatch(value) is None:
            raise ValueError("money as a string is an optional '-' and up to 19 digits")
        value = int(value)
    if not -MAX_MINOR_UNITS <= value <= MAX_MINOR_UNITS:
        raise ValueError(f"money is at most {MAX_MINOR_UNITS} minor units either way")
    return value


Money = Annotated[int, BeforeValidator(_money)]
AccountId = Annotated[str, Field(pattern=f"^{ID_PATTERN}$", description=ID_RULE)]


class OpenBody(BaseModel):
    """Open an account."""

    model_config = ConfigDict(extra="forbid")
    id: AccountId
    currency: Annotated[str, Field(min_length=1, max_length=16)]
    overdraft_limit: Money = 0


class AmountBody(BaseModel):
    """A deposit or a withdrawal."""

    model_config = ConfigDict(extra="forbid")
    amount: Money


class EmptyBody(BaseModel):
    """Nothing (closing an account)."""

    model_config = ConfigDict(extra="forbid")


class TransferBody(BaseModel):
    """Move `amount` from `source` to `target` (same currency); `pending` only reserves it,
    voided after `timeout_s` on the source partition's clock unless posted."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId
    target: AccountId
    amount: Money
    pending: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=MAX_PENDING_TIMEOUT_S)] | None = None


class PostBody(BaseModel):
    """Complete a pending transfer of `source` with `amount` (absent: all it reserved)."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId
    amount: Money | None = None


class VoidBody(BaseModel):
    """Release a pending transfer of `source`."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId


class SettleBody(BaseModel):
    """Settle the lost leg of a transfer of `source`: `refund` sends the money back to the
    source, `credit` delivers the leg as it was; `reason` is recorded."""

    model_config = ConfigDict(extra="forbid")
    source: AccountId
    action: Literal["refund", "credit"]
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]


_M = TypeVar("_M", bound=BaseModel)


class BodyError(Exception):
    """A body refused before any command: its HTTP status, problem code and detail."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


async def read_body(request: Request, model: type[_M]) -> _M:
    """The request's JSON body as ``model``: at most MAX_BODY_BYTES (413), parsed by
    pydantic's own JSON parser, which bounds nesting (422)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BodyError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    data = b"".join(chunks) or b"{}"
    try:
        return model.model_validate_json(data)
    except ValidationError as e:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)[:5]
        )
        raise BodyError(422, "invalid_request", detail) from None


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its body itself (``read_body``)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
