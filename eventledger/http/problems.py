"""Errors as RFC 9457 problem details (``application/problem+json``), with one stable HTTP
status per kind of error.

A command's rejection code becomes the problem's ``type`` (``urn:eventledger:<code>``, also
given as ``code``) and its message the ``detail``. Refusals and validation errors are 4xx; a
reply that did not come in time is 504, with the advice to retry with the same
Idempotency-Key (the command id: it is executed at most once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi.responses import JSONResponse

__all__ = ["MEDIA_TYPE", "REJECTION_STATUS", "problem", "status_of"]

MEDIA_TYPE: Final = "application/problem+json"

REJECTION_STATUS: Final[dict[str, int]] = {
    # the account is not there
    "unknown_account": 404,
    # the account's state refuses it
    "already_open": 409,
    "account_closed": 409,
    "insufficient_funds": 409,
    "nonzero_balance": 409,
    "version_conflict": 409,
    "limit_exceeded": 409,
    "currency_mismatch": 409,
    "pending_transfers": 409,
    "pending_expired": 409,
    "transfers_in_flight": 409,  # a close while money sent from the account may come back
    "transfer_open": 409,  # a transfer id still open on the source: wait, or use a new id
    "refused_by_operator": 409,  # a lost leg an operator settled by sending the money back
    # a pending transfer that is not there (never made, or already posted or voided)
    "unknown_pending": 404,
    # the command itself is wrong, or its id is (IETF idempotency-key draft: 422 on reuse)
    "amount_not_positive": 422,
    "invalid_command": 422,
    "id_reused": 422,
    "expired": 422,
    "first_attempt_in_future": 422,
    "same_account": 422,
    # poison (a request the API built cannot be these, but the codes are the service's)
    "malformed": 400,
    "too_large": 413,
    "unknown_command_type": 400,
    "invalid_payload": 400,
    "key_mismatch": 400,
    "wrong_partition": 400,
    "invalid_reply_to": 400,
    "forged_internal_command": 400,
    # set aside after repeated aborts: the same key gets the same answer
    "unprocessable": 500,
}


def status_of(code: str) -> int:
    """The HTTP status of a rejection code (422 for a code this table does not know)."""
    return REJECTION_STATUS.get(code, 422)


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 response: ``type`` from ``code``, ``title``, ``status``, ``detail``, and
    extension members (``code``, and ``extra``)."""
    body = {
        "type": f"urn:eventledger:{code}",
        "title": title or code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(
        body, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {})
    )
