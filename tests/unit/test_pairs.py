"""A pending transfer's legs in every order (`ledger.pairs`): given a source and a target,
when the source reserves, then posts, voids, lets expire or is refused, with its legs
delivered in any order (as a move can reorder them), then once every leg has landed the
target holds no pending credit and awaits nothing, the source holds no reservation, and
money is conserved."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import (
    Account,
    AccountOpened,
    Context,
    Decision,
    Deposited,
    PendingCreditAwaited,
    PendingCreditPaired,
    PostPending,
    Send,
    Transfer,
    VoidPending,
    decide,
    evolve,
)
from ledger.internal import (
    ExpirePending,
    ForcedLeg,
    NotePendingCredit,
    ReleasePendingCredit,
    SettlePendingCredit,
    VoidRefusedPending,
    leg_id,
)
from ledger.pairs import awaited_key

NOW = 1_000_000
TIMEOUT_MS = 10


@dataclass
class Ledger:
    """Two accounts, `a` (the source) and `b` (the target), and the legs in flight."""

    states: dict[str, Account | None]
    versions: dict[str, int] = field(default_factory=lambda: {"a": 2, "b": 1})
    in_flight: list[Send] = field(default_factory=list)

    def run(self, account: str, command: object, command_id: str, now_ms: int = NOW) -> Decision:
        context = Context(command_id, account, now_ms, self.versions[account])
        decided = decide(self.states[account], command, context)  # type: ignore[arg-type]
        self.states[account] = reduce(evolve, decided.events, self.states[account])
        self.versions[account] += len(decided.events)
        self.in_flight.extend(decided.sends)
        return decided

    def deliver(self, index: int) -> None:
        send = self.in_flight.pop(index % len(self.in_flight))
        self.run(send.target, send.command, send.command_id, NOW + TIMEOUT_MS)

    def total(self) -> int:
        return sum(s.balance for s in self.states.values() if s is not None)


def _start(target_currency: str) -> Ledger:
    a = reduce(evolve, [AccountOpened("EUR", 0), Deposited(100)], None)
    b = reduce(evolve, [AccountOpened(target_currency, 0)], None)
    ledger = Ledger({"a": a, "b": b})
    ledger.run("a", Transfer("b", 30, pending=True, timeout_ms=TIMEOUT_MS), "t1")
    return ledger


@settings(max_examples=400, deadline=None)
@given(
    refuses=st.booleans(),
    action=st.sampled_from(["post", "void", "expire", "none"]),
    act_after=st.integers(0, 3),
    order=st.lists(st.integers(0, 7), min_size=8, max_size=8),
)
def test_every_order_of_the_legs_ends_paired_and_conserves_money(
    refuses: bool, action: str, act_after: int, order: list[int]
) -> None:
    ledger = _start("USD" if refuses else "EUR")
    acted = False
    for step, pick in enumerate(order):
        if step == act_after and action != "none":
            acted = True
            command = {
                "post": PostPending("t1"),
                "void": VoidPending("t1"),
                "expire": ExpirePending("t1", 3),
            }[action]
            when = NOW + TIMEOUT_MS if action == "expire" else NOW
            ledger.run("a", command, f"{action}-1", when)
        if ledger.in_flight:
            ledger.deliver(pick)
    while ledger.in_flight:  # the rest land, in order
        ledger.deliver(0)
    a, b = ledger.states["a"], ledger.states["b"]
    assert a is not None and b is not None
    assert ledger.total() == 100, "money is conserved"
    assert a.sending == {} and b.awaited == {}, "every leg paired"
    if refuses or acted:
        assert a.pending == {} and a.pending_debits == 0
        assert b.incoming == {} and b.pending_credits == 0, "no credit left that nothing ends"
    else:
        assert a.pending_debits == 30 and b.pending_credits == 30, "reserved, noted"


def test_an_end_that_overtakes_its_note_makes_the_note_a_no_op() -> None:
    """Given a release that came first, when the note comes, then it notes nothing and
    is accepted (the reservation's client was answered), and nothing is awaited."""
    ledger = _start("EUR")
    (note,) = ledger.in_flight
    ledger.in_flight.clear()
    ledger.run("a", VoidPending("t1"), "v1")
    ledger.deliver(0)  # the release, first
    b = ledger.states["b"]
    assert b is not None and b.awaited == {awaited_key("a", "t1", 3): "note"}
    late = ledger.run("b", note.command, note.command_id)
    assert late == Decision([PendingCreditPaired("t1", "a", 3)])
    b = ledger.states["b"]
    assert b is not None and (b.awaited, b.incoming, b.pending_credits) == ({}, {}, 0)


def test_a_settlement_that_overtakes_its_note_is_refunded_and_the_note_ends_it() -> None:
    ledger = _start("EUR")
    (note,) = ledger.in_flight
    ledger.in_flight.clear()
    ledger.run("a", PostPending("t1"), "p1")
    (settle,) = ledger.in_flight
    assert isinstance(settle.command, SettlePendingCredit)
    ledger.deliver(0)  # the settlement: no credit noted, refunded, awaits its note
    ledger.deliver(0)  # the refund lands on the source
    a = ledger.states["a"]
    assert a is not None and (a.balance, a.sending) == (100, {})
    ledger.run("b", note.command, note.command_id)
    b = ledger.states["b"]
    assert b is not None and (b.awaited, b.incoming, b.balance) == ({}, {}, 0)


def test_a_refused_note_awaits_its_end_and_a_source_still_holding_sends_it() -> None:
    ledger = _start("USD")
    ledger.deliver(0)  # the note, refused
    b = ledger.states["b"]
    assert b is not None and b.awaited == {awaited_key("a", "t1", 3): "end"}
    (void,) = ledger.in_flight
    assert void.command == VoidRefusedPending("t1", "currency_mismatch", 3, end=True)
    ledger.deliver(0)
    (release,) = ledger.in_flight
    assert release == Send("b", ReleasePendingCredit("t1", "a", 3), leg_id("release", "a", "t1", 3))
    ledger.deliver(0)
    b = ledger.states["b"]
    assert b is not None and b.awaited == {}


def test_an_older_refusal_asks_for_no_end() -> None:
    """A `VoidRefusedPending` of before legs were paired (`end` False) voids, sends nothing."""
    ledger = _start("EUR")
    ledger.in_flight.clear()
    voided = ledger.run("a", VoidRefusedPending("t1", "currency_mismatch", 3), "vr")
    assert [type(e).__name__ for e in voided.events] == ["PendingVoided"] and not voided.sends


def test_a_note_refused_where_no_account_is_awaits_nothing() -> None:
    ledger = _start("EUR")
    ledger.states["b"] = None
    ledger.deliver(0)
    (void,) = ledger.in_flight
    assert isinstance(void.command, VoidRefusedPending) and not void.command.end


def test_an_operators_refusal_of_a_lost_note_pairs_with_an_end_that_came_first() -> None:
    target = reduce(
        evolve, [AccountOpened("EUR", 0), PendingCreditAwaited("t1", "a", 3, "note")], None
    )
    note = NotePendingCredit("t1", "a", 30, "EUR", 3)
    forced = ForcedLeg(note, refund=True, operator="ops", reason="lost")
    decided = decide(target, forced, Context("f", "b", NOW, 2))
    assert PendingCreditPaired("t1", "a", 3) in decided.events
    after = reduce(evolve, decided.events, target)
    assert after is not None and after.awaited == {}
    (void,) = decided.sends
    assert isinstance(void.command, VoidRefusedPending) and not void.command.end


def test_a_state_of_before_pairing_decodes_and_a_pairing_of_nothing_awaited_is_corrupt() -> None:
    """An `Account` encoded without `awaited` (schema 4's layout) decodes with none; a
    pairing of nothing awaited does not fold."""
    state = reduce(evolve, [AccountOpened("EUR", 0), Deposited(5)], None)
    assert state is not None
    old = msgspec.msgpack.encode(msgspec.to_builtins(state)[:-1])
    assert msgspec.msgpack.decode(old, type=Account) == state
    with pytest.raises(ValueError, match="nothing awaited"):
        evolve(state, PendingCreditPaired("t1", "a", 3))
