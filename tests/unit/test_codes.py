"""The refusal vocabulary: one enum family from the domain to the HTTP status table."""

import json
from enum import StrEnum

import pytest

from eventledger.assembly import CODES
from eventledger.http.problems import PROBLEMS, refusal_problem
from ledger import RejectionCode
from topology.codes import (
    FlowCode,
    IdCode,
    PoisonCode,
    ReadCode,
    UnknownCodeError,
    Vocabulary,
)
from topology.envelopes import Reply


def test_the_http_table_is_total_over_every_enum_of_the_vocabulary_and_the_reads() -> None:
    assert set(CODES.enums) == {RejectionCode, FlowCode, IdCode, PoisonCode}
    enums = (*CODES.enums, ReadCode)
    for enum in enums:
        for member in enum:
            assert member in PROBLEMS, f"{enum.__name__}.{member.name}: no HTTP status"
    assert all(400 <= problem.status < 600 for problem in PROBLEMS.values())
    assert len(PROBLEMS) == sum(len(enum) for enum in enums), "only the family's codes"


def test_a_read_code_is_never_a_reply_code() -> None:
    for member in ReadCode:
        with pytest.raises(UnknownCodeError):
            CODES.parse(str(member.value))
    assert PROBLEMS[ReadCode.POSITION_NOT_REACHED].status == 409


def test_statuses_keep_their_meaning() -> None:
    assert PROBLEMS[RejectionCode.UNKNOWN_ACCOUNT].status == 404
    assert PROBLEMS[RejectionCode.TRANSFERS_IN_FLIGHT].status == 409
    assert PROBLEMS[RejectionCode.INSUFFICIENT_FUNDS].status == 409
    assert PROBLEMS[IdCode.ID_REUSED].status == 422
    assert PROBLEMS[PoisonCode.TOO_LARGE] == (413, "too large")
    assert all(400 <= PROBLEMS[code].status < 500 for code in RejectionCode)


def test_a_code_on_the_wire_parses_back_to_its_enum_member() -> None:
    for enum in CODES.enums:
        for member in enum:
            parsed = CODES.parse(str(member.value))
            assert parsed is member and type(parsed) is enum
    refused = Reply.refuse(
        command_id="c", aggregate_id="a", code="id_reused", message="m", version=1, position=None
    )
    assert CODES.code_of(refused) is IdCode.ID_REUSED
    accepted = Reply.accept(command_id="c", aggregate_id="a", version=1, position=None)
    assert CODES.code_of(accepted) is None


def test_an_unknown_code_says_so() -> None:
    with pytest.raises(UnknownCodeError, match=r"'no_such_code'.*RejectionCode, FlowCode"):
        CODES.parse("no_such_code")
    strange = Reply.refuse(
        command_id="c", aggregate_id="a", code="no_such_code", message="m", version=1, position=None
    )
    response = refusal_problem(strange)
    assert response.status_code == 502
    assert json.loads(response.body)["code"] == "unknown_code"


def test_a_refusal_problem_is_the_codes_table_entry() -> None:
    reply = Reply.refuse(
        command_id="c",
        aggregate_id="a",
        code=RejectionCode.INSUFFICIENT_FUNDS,
        message="cannot withdraw 5: 4 available",
        version=3,
        position=None,
    )
    response = refusal_problem(reply, command_id="c")
    body = json.loads(response.body)
    assert response.status_code == 409
    assert body == {
        "type": "urn:eventledger:insufficient_funds",
        "title": "insufficient funds",
        "status": 409,
        "detail": "cannot withdraw 5: 4 available",
        "code": "insufficient_funds",
        "command_id": "c",
    }


def test_a_vocabulary_refuses_a_domain_enum_that_reuses_a_flow_code() -> None:
    class Clashing(StrEnum):
        EXPIRED = "expired"

    with pytest.raises(ValueError, match="'expired' is both"):
        Vocabulary(Clashing)
