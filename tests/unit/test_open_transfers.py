"""The cap on the transfers an account holds open on each side (`MAX_OPEN_TRANSFERS`): as
given / when / then on the rules, and through the batch step across two partitions. A
source at its cap refuses at once; a target at its cap refuses a pending credit as it
refuses any (the source's reservation is voided, its client told why, no money moves)."""

from functools import reduce

import pytest

from ledger import (
    Account,
    AccountOpened,
    Context,
    Deposited,
    Event,
    Pending,
    PendingCreditNoted,
    PendingReserved,
    PostPending,
    RejectionCode,
    Send,
    Transfer,
    TransferDebited,
    VoidPending,
    decide,
    evolve,
    leg_id,
)
from ledger.aggregate import LEDGER, AccountAggregate
from ledger.events import PendingCreditAwaited, TransferCompleted
from ledger.internal import (
    CreditTransfer,
    NotePendingCredit,
    ReleasePendingCredit,
    VoidRefusedPending,
)
from ledger.state import MAX_OPEN_TRANSFERS
from topology.codec.aggregate import Codec

from .test_transfer_step import Part, client_replies, internal_for, on, opened

NOW = 1_000_000
CAP = 2
FULL = RejectionCode.TOO_MANY_OPEN_TRANSFERS


def given(*events: Event) -> Account:
    state = reduce(evolve, events, None)
    assert state is not None
    return state


def at(account: str, *, version: int = 10, cap: int = CAP) -> Context:
    return Context("t9", account, NOW, version, cap)


def code(decision: object) -> str | None:
    rejection = getattr(decision, "rejection", None)
    return None if rejection is None else rejection.code


# A source holding one reservation and one transfer in flight: at a cap of 2.
SOURCE_AT_CAP = given(
    AccountOpened("EUR", 0),
    Deposited(100),
    PendingReserved("t1", "b", 10, None, 3),
    TransferDebited("t2", "c", 10, 4, NOW),
)
# A target noting two pending credits, from two sources: at a cap of 2.
TARGET_AT_CAP = given(
    AccountOpened("EUR", 0),
    PendingCreditNoted("p1", "x", 5, 3),
    PendingCreditNoted("p2", "y", 5, 3),
)


def test_a_source_at_its_cap_refuses_one_more_transfer_plain_or_pending() -> None:
    assert SOURCE_AT_CAP.open_out == CAP
    for command in (Transfer("d", 5), Transfer("d", 5, pending=True, timeout_ms=100)):
        refused = decide(SOURCE_AT_CAP, command, at("a"))
        assert code(refused) == FULL
        assert refused.events == [] and refused.sends == []
    assert code(decide(SOURCE_AT_CAP, Transfer("d", 5), at("a", cap=CAP + 1))) is None


def test_posting_or_voiding_at_the_cap_is_allowed_and_an_ended_transfer_makes_room() -> None:
    posted = decide(SOURCE_AT_CAP, PostPending("t1"), at("a"))
    assert code(posted) is None
    after_post = reduce(evolve, posted.events, SOURCE_AT_CAP)
    assert after_post.open_out == CAP, "a post moves the reservation to the transfers in flight"
    assert code(decide(SOURCE_AT_CAP, VoidPending("t1"), at("a"))) is None
    landed = evolve(SOURCE_AT_CAP, TransferCompleted("t2", "c"))
    assert landed.open_out == CAP - 1
    assert code(decide(landed, Transfer("d", 5, pending=True), at("a"))) is None


def test_a_target_at_its_cap_refuses_the_pending_credit_and_the_source_voids_it() -> None:
    assert TARGET_AT_CAP.open_in == CAP
    note = NotePendingCredit("t1", "a", 10, "EUR", 3)
    refused = decide(TARGET_AT_CAP, note, at("b"))
    assert code(refused) == FULL and not refused.final
    assert refused.events == [PendingCreditAwaited("t1", "a", 3, "end")]  # its end is awaited
    void = VoidRefusedPending("t1", FULL, 3, end=True)
    assert refused.sends == [Send("a", void, leg_id("void-refused", "a", "t1", 3))]
    assert refused.rejection is not None and "pending credits" in refused.rejection.message
    reserved = given(
        AccountOpened("EUR", 0), Deposited(100), PendingReserved("t1", "b", 10, None, 3)
    )
    voiding = decide(reserved, void, at("a"))
    release = ReleasePendingCredit("t1", "a", 3)
    assert voiding.sends == [Send("b", release, leg_id("release", "a", "t1", 3))]
    voided = reduce(evolve, voiding.events, reserved)
    assert (voided.balance, voided.available, voided.pending) == (100, 100, {})
    assert voided.ended == {"t1": "refused"}
    assert code(decide(TARGET_AT_CAP, note, at("b", cap=CAP + 1))) is None


def test_a_plain_credit_lands_on_a_target_at_its_cap_it_opens_nothing() -> None:
    credit = CreditTransfer("t1", "a", 10, "EUR", 3)
    landed = decide(TARGET_AT_CAP, credit, at("b"))
    assert code(landed) is None
    assert reduce(evolve, landed.events, TARGET_AT_CAP).open_in == CAP


def test_the_service_runs_with_the_documented_cap() -> None:
    assert LEDGER.max_open_transfers == MAX_OPEN_TRANSFERS
    reserved = {f"r{i}": Pending("out", "b", 1, None, i + 3) for i in range(MAX_OPEN_TRANSFERS)}
    full = Account("open", "EUR", MAX_OPEN_TRANSFERS * 2, 0, MAX_OPEN_TRANSFERS, 0, reserved)
    one_less = Account(
        "open", "EUR", MAX_OPEN_TRANSFERS * 2, 0, 0, 0, dict(list(reserved.items())[1:])
    )
    for state, expected in ((full, FULL), (one_less, None)):
        decided = LEDGER.decide_in(
            state, Transfer("b", 1), command_id="t", aggregate_id="a", now_ms=NOW, version=9
        )
        assert code(decided) == expected
    with pytest.raises(ValueError, match="at least 1"):
        AccountAggregate(0)


ONE_OPEN = Codec(AccountAggregate(max_open_transfers=1))


def test_a_source_at_its_cap_is_refused_through_the_step_and_nothing_moves() -> None:
    p0 = Part(0, codec=ONE_OPEN)
    a, b = on(0, "a"), on(0, "b")
    opened(p0, a, 100)
    opened(p0, b)
    p0.send(a, Transfer(b, 10, pending=True), "r1")
    refused = p0.send(a, Transfer(b, 10), "t2")
    assert refused.events == [] and refused.internal == []
    assert {(r.command_id, r.code) for r in client_replies(refused)} == {("t2", FULL)}
    assert p0.committed[a].state.available == 90 and p0.balances() == 100
    again = p0.send(a, Transfer(b, 10), "t2")
    assert {r.code for r in client_replies(again)} == {FULL}, "a retry gets the same answer"


def test_a_target_at_its_cap_sends_the_reservation_back_and_money_is_conserved() -> None:
    p0, p1 = Part(0, codec=ONE_OPEN), Part(1, codec=ONE_OPEN)
    a, c, b = on(0, "a"), on(0, "c"), on(1, "b")
    opened(p0, a, 100)
    opened(p0, c, 100)
    opened(p1, b)
    first = p0.send(c, Transfer(b, 10, pending=True), "r1")
    (noted,) = client_replies(p1.deliver(internal_for(first, 1)))
    assert noted.accepted and p1.committed[b].state.open_in == 1
    second = p0.send(a, Transfer(b, 30, pending=True), "r2", lane=1)
    assert p0.committed[a].state.available == 70, "reserved while the target decides"
    refusal = p1.deliver(internal_for(second, 1))
    assert client_replies(refusal) == []
    assert list(p1.committed[b].state.awaited.values()) == ["end"], "its end is awaited"
    back = p0.deliver(internal_for(refusal, 0))
    p1.deliver(internal_for(back, 1))  # the source's release ends the refused note
    assert p1.committed[b].state.awaited == {}
    answers = {(r.command_id, r.aggregate_id, r.code) for r in client_replies(back)}
    assert answers == {("r2", a, FULL)}, "one answer, remembered under the leg and the transfer"
    assert {r.partition for r in back.replies} == {0 * 2 + 1}, "on the client's lane"
    state = p0.committed[a].state
    assert (state.balance, state.available, state.pending) == (100, 100, {})
    assert state.ended == {"r2": "refused"}
    assert p0.balances() + p1.balances() == 200, "nothing moved"
    assert p0.flows is not None and p0.flows.balance() == p0.balances()
    assert p1.flows is None, "a reservation and its refusal move no money"
    retry = p0.send(a, Transfer(b, 30, pending=True), "r2")
    assert {r.code for r in client_replies(retry)} == {FULL} and retry.events == []
    released = p0.send(c, VoidPending("r1"), "v1")
    p1.deliver(internal_for(released, 1))
    assert p1.committed[b].state.open_in == 0
    third = p0.send(a, Transfer(b, 30, pending=True), "r3")
    (taken,) = client_replies(p1.deliver(internal_for(third, 1)))
    assert taken.accepted and taken.command_id == "r3"
    assert p0.committed[a].state.available == 70 and p1.committed[b].state.pending_credits == 30
