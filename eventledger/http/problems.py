"""Errors as RFC 9457 problem details (``application/problem+json``), with one stable HTTP
status per kind of error.

A command's refusal code becomes the problem's ``type`` (``urn:eventledger:<code>``, also
given as ``code``) and its message the ``detail``; its status and title come from
``PROBLEMS``, a table over every enum of the service's refusal vocabulary
(``eventledger.assembly.CODES``) and the codes of a read not answered (``ReadCode``); a unit
test proves it total. Refusals and validation errors
are 4xx; a reply that did not come in time is 504, with the advice to retry with the same
Idempotency-Key (the command id: it is executed at most once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from fastapi.responses import JSONResponse

from eventledger.assembly import CODES, Code
from ledger.rejections import RejectionCode
from topology.codes import FlowCode, IdCode, PoisonCode, ReadCode, UnknownCodeError
from topology.envelopes import Reply

__all__ = ["MEDIA_TYPE", "PROBLEMS", "Problem", "problem", "refusal_problem"]

log = logging.getLogger(__name__)

MEDIA_TYPE: Final = "application/problem+json"


class Problem(NamedTuple):
    """The HTTP status and title of a refusal code."""

    status: int
    title: str


def _entry(status: int, code: Code | ReadCode) -> tuple[Code | ReadCode, Problem]:
    return code, Problem(status, code.replace("_", " "))


PROBLEMS: Final[Mapping[Code | ReadCode, Problem]] = dict(
    [
        # the account is not there
        _entry(404, RejectionCode.UNKNOWN_ACCOUNT),
        # the account's state refuses it
        _entry(409, RejectionCode.ALREADY_OPEN),
        _entry(409, RejectionCode.ACCOUNT_CLOSED),
        _entry(409, RejectionCode.INSUFFICIENT_FUNDS),
        _entry(409, RejectionCode.NONZERO_BALANCE),
        _entry(409, FlowCode.VERSION_CONFLICT),
        _entry(409, RejectionCode.LIMIT_EXCEEDED),
        _entry(409, RejectionCode.CURRENCY_MISMATCH),
        _entry(409, RejectionCode.PENDING_TRANSFERS),
        _entry(409, RejectionCode.PENDING_EXPIRED),
        # a close while money sent from the account may come back
        _entry(409, RejectionCode.TRANSFERS_IN_FLIGHT),
        # a transfer id still open on the source: wait, or use a new id
        _entry(409, RejectionCode.TRANSFER_OPEN),
        # a lost leg an operator settled by sending the money back
        _entry(409, RejectionCode.REFUSED_BY_OPERATOR),
        # the source, or the target, holds the most open transfers it may: end some first
        _entry(409, RejectionCode.TOO_MANY_OPEN_TRANSFERS),
        # the account's snapshot would pass Kafka's record size: nothing was applied
        _entry(409, FlowCode.STATE_TOO_LARGE),
        # a pending transfer that is not there (never made, or already posted or voided)
        _entry(404, RejectionCode.UNKNOWN_PENDING),
        # the command itself is wrong, or its id is (IETF idempotency-key draft: 422 on reuse)
        _entry(422, RejectionCode.AMOUNT_NOT_POSITIVE),
        _entry(422, RejectionCode.INVALID_COMMAND),
        _entry(422, RejectionCode.SAME_ACCOUNT),
        _entry(422, IdCode.ID_REUSED),
        _entry(422, IdCode.EXPIRED),
        _entry(422, IdCode.FIRST_ATTEMPT_IN_FUTURE),
        # poison (a request the API built cannot be these, but the codes are the service's)
        _entry(400, PoisonCode.MALFORMED),
        _entry(413, PoisonCode.TOO_LARGE),
        _entry(400, PoisonCode.UNKNOWN_COMMAND_TYPE),
        _entry(400, PoisonCode.INVALID_PAYLOAD),
        _entry(400, PoisonCode.KEY_MISMATCH),
        _entry(400, PoisonCode.WRONG_PARTITION),
        _entry(400, PoisonCode.INVALID_REPLY_TO),
        _entry(400, PoisonCode.NOT_INTERNAL),
        _entry(400, PoisonCode.FLOW_RECORD),
        _entry(400, FlowCode.FORGED_INTERNAL_COMMAND),
        # set aside after repeated aborts: the same key gets the same answer
        _entry(500, PoisonCode.UNPROCESSABLE),
        # a read that asked for at least a version or position not committed (yet)
        _entry(409, ReadCode.POSITION_NOT_REACHED),
    ]
)


def refusal_problem(reply: Reply, *, detailed: bool = True, **extra: Any) -> JSONResponse:
    """The problem of a refused `reply`, by its code's entry in `PROBLEMS`. A code that no
    enum of the vocabulary names (a newer service?) is a 502 that says so. Without
    ``detailed`` the detail is the title only: the reply's message can name balances."""
    try:
        code = CODES.code_of(reply)
    except UnknownCodeError as e:
        log.error("a reply with an unknown code: %s", e)
        return problem(502, "unknown_code", str(e), **extra)
    if code is None:
        raise ValueError("an accepted reply is not a problem")
    status, title = PROBLEMS[code]
    return problem(status, code, reply.message if detailed else title, title=title, **extra)


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
