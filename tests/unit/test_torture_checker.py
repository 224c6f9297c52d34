"""The fault suite's checker on fake histories: a clean run passes, and each anomaly kind is
caught (given these ops and these events, when checked, then this anomaly)."""

from __future__ import annotations

from typing import Any

from eventledger.torture.checker import Anomaly, EventFact, check, fact, flows_problems
from eventledger.torture.history import Answer, History, Kind, Op
from ledger.events import (
    AccountOpened,
    Deposited,
    TransferCompleted,
    TransferCredited,
    TransferDebited,
    TransferForced,
    TransferReversed,
    Withdrawn,
)
from ledger.money import Money
from topology.flows import Flows

BUDGET = 10.0


def _op(
    history: History,
    account: str,
    command_id: str,
    kind: Kind,
    amount: int = 0,
    *,
    reply: tuple[str, str, bool, str | None] | None = None,
    at: float = 1.0,
    probe: bool = False,
) -> Op:
    """An op started at 0 s; ``reply`` = (account, id, accepted, code) received at ``at``."""
    op = history.begin(
        client=0,
        account=account,
        command_id=command_id,
        kind=kind,
        amount=amount,
        started=0.0,
        budget=BUDGET,
        probe=probe,
    )
    op.attempts = 1
    if reply is not None:
        op.answers.append(Answer(reply[1], reply[0], reply[2], reply[3], at))
    return op


def _ok(history: History, account: str, command_id: str, kind: Kind, amount: int = 0) -> Op:
    return _op(history, account, command_id, kind, amount, reply=(account, command_id, True, None))


def _bank() -> tuple[History, list[EventFact], dict[str, int]]:
    """alice opened (overdraft 100), +500, −200: a clean run."""
    h = History()
    _ok(h, "alice", "o", Kind.OPEN)
    _ok(h, "alice", "d1", Kind.DEPOSIT, 500)
    _ok(h, "alice", "w1", Kind.WITHDRAW, 200)
    events = [
        fact("alice", "o", AccountOpened("EUR", 100)),
        fact("alice", "d1", Deposited(500)),
        fact("alice", "w1", Withdrawn(200)),
    ]
    return h, events, {"alice": 300}


def test_a_clean_run_has_no_anomaly() -> None:
    h, events, actors = _bank()
    result = check(h.ops(), events, actors)
    assert result.ok, result.to_dict()
    assert (result.expected_total, result.events_total, result.actors_total) == (300, 300, 300)
    assert result.accepted == 3 and result.answered == 3


def test_a_rejection_with_no_event_is_fine_and_counted_by_code() -> None:
    h, events, actors = _bank()
    _op(h, "alice", "w2", Kind.WITHDRAW, 10_000, reply=("alice", "w2", False, "insufficient_funds"))
    _op(h, "alice", "w3", Kind.WITHDRAW, 1, reply=("alice", "w3", False, "expired"))
    result = check(h.ops(), events, actors)
    assert result.ok
    assert result.codes["insufficient_funds"] == 1 and result.codes["expired"] == 1


def test_lost_accepted_without_event() -> None:
    h, events, actors = _bank()
    _ok(h, "alice", "d2", Kind.DEPOSIT, 7)
    result = check(h.ops(), events, actors)
    assert result.counts[Anomaly.LOST] == 1
    assert result.counts[Anomaly.TOTAL] == 1  # accepted moves say 307, the events 300


def test_duplicate_two_events_for_one_id() -> None:
    h, events, _ = _bank()
    events.append(fact("alice", "d1", Deposited(500)))
    result = check(h.ops(), events, {"alice": 800})
    assert result.counts[Anomaly.DUPLICATE] == 1
    assert result.counts[Anomaly.TOTAL] == 1  # money created: 800 against 300 accepted


def test_the_same_id_on_two_accounts_is_not_a_duplicate() -> None:
    h, events, _ = _bank()
    _ok(h, "bob", "o-bob", Kind.OPEN)
    _ok(h, "bob", "d1", Kind.DEPOSIT, 40)
    events += [fact("bob", "o-bob", AccountOpened("EUR", 0)), fact("bob", "d1", Deposited(40))]
    result = check(h.ops(), events, {"alice": 300, "bob": 40})
    assert result.ok, result.to_dict()


def test_phantom_rejected_but_applied() -> None:
    h, events, _ = _bank()
    _op(h, "alice", "d2", Kind.DEPOSIT, 5, reply=("alice", "d2", False, "already_open"))
    events.append(fact("alice", "d2", Deposited(5)))
    result = check(h.ops(), events, {"alice": 305})
    assert result.counts[Anomaly.PHANTOM] == 1


def test_phantom_an_event_nobody_sent() -> None:
    h, events, _ = _bank()
    events.append(fact("alice", "ghost", Deposited(5)))
    result = check(h.ops(), events, {"alice": 305})
    assert result.counts[Anomaly.PHANTOM] == 1


def test_crossed_a_reply_for_another_account() -> None:
    """Client A sent dep-1 to alice and was told bob's rejection of bob's dep-1."""
    h, events, _ = _bank()
    _ok(h, "bob", "o-bob", Kind.OPEN)
    a = _op(h, "alice", "dep-1", Kind.DEPOSIT, 100, reply=("bob", "dep-1", False, "insuf"))
    _op(h, "bob", "dep-1", Kind.WITHDRAW, 10**6, reply=("bob", "dep-1", False, "insuf"))
    events += [
        fact("bob", "o-bob", AccountOpened("EUR", 0)),
        fact("alice", "dep-1", Deposited(100)),
    ]
    result = check(h.ops(), events, {"alice": 400, "bob": 0})
    assert result.counts[Anomaly.CROSSED] == 1
    assert Anomaly.CROSSED in result.op_anomalies[a.op_id]
    assert result.counts[Anomaly.PHANTOM] == 1  # A believes "rejected" but alice got +100
    assert result.crossed_and(Anomaly.PHANTOM) == 1


def test_unanswered_within_the_budget() -> None:
    h, events, _ = _bank()
    silent = _op(h, "alice", "d2", Kind.DEPOSIT, 5)
    silent.attempts = 4
    late = _op(h, "alice", "d3", Kind.DEPOSIT, 5, reply=("alice", "d3", True, None), at=BUDGET + 1)
    events.append(fact("alice", "d3", Deposited(5)))
    result = check(h.ops(), events, {"alice": 305})
    assert result.counts[Anomaly.UNANSWERED] == 2
    assert result.op_anomalies[late.op_id] == {Anomaly.UNANSWERED}
    assert result.counts[Anomaly.TOTAL] == 0  # the late one took effect and is counted
    assert result.retried == 1
    assert result.examples[Anomaly.UNANSWERED] == [
        "alice/d2: 4 tries from 0.0 s to its budget's end at 10.0 s (no event)",
        "alice/d3: 1 tries from 0.0 s to its budget's end at 10.0 s (it took effect: an event)",
    ]


def test_overdraft_below_the_limit_in_the_events_and_in_an_actor() -> None:
    h, events, _ = _bank()
    _ok(h, "alice", "w2", Kind.WITHDRAW, 450)  # 300 − 450 = −150 < −100
    events.append(fact("alice", "w2", Withdrawn(450)))
    result = check(h.ops(), events, {"alice": -150})
    assert result.counts[Anomaly.OVERDRAFT] == 2  # once in the fold, once in the actor
    assert result.counts[Anomaly.TOTAL] == 0


def test_total_and_mismatch_when_an_actor_disagrees_with_the_events() -> None:
    h, events, _ = _bank()
    result = check(h.ops(), events, {"alice": 310})
    assert result.counts[Anomaly.MISMATCH] == 1
    assert result.counts[Anomaly.TOTAL] == 1


def test_mismatch_an_account_the_actors_do_not_hold() -> None:
    h, events, _ = _bank()
    result = check(h.ops(), events, {})
    assert result.counts[Anomaly.MISMATCH] == 1


def test_reuse_of_an_id_with_another_command_must_be_refused() -> None:
    h, events, _ = _bank()
    _ok(h, "carol", "o-carol", Kind.OPEN)
    _op(h, "carol", "r1", Kind.DEPOSIT, 5, reply=("carol", "r1", True, None), probe=True)
    again = _op(h, "carol", "r1", Kind.DEPOSIT, 999, reply=("carol", "r1", True, None), probe=True)
    events += [fact("carol", "o-carol", AccountOpened("EUR", 0)), fact("carol", "r1", Deposited(5))]
    result = check(h.ops(), events, {"alice": 300, "carol": 5})
    assert result.counts == {Anomaly.REUSE: 1}  # accepted, silently not executed
    assert result.op_anomalies[again.op_id] == {Anomaly.REUSE}

    # The same probe, refused as it should be:
    h2, _, _ = _bank()
    _ok(h2, "carol", "o-carol", Kind.OPEN)
    _op(h2, "carol", "r1", Kind.DEPOSIT, 5, reply=("carol", "r1", True, None), probe=True)
    _op(h2, "carol", "r1", Kind.DEPOSIT, 999, reply=("carol", "r1", False, "id_reused"), probe=True)
    result2 = check(h2.ops(), events, {"alice": 300, "carol": 5})
    assert result2.ok and result2.codes["id_reused"] == 1


def test_reuse_executed_is_caught() -> None:
    h, events, _ = _bank()
    _ok(h, "carol", "o-carol", Kind.OPEN)
    _op(h, "carol", "r1", Kind.DEPOSIT, 5, reply=("carol", "r1", True, None), probe=True)
    _op(h, "carol", "r1", Kind.DEPOSIT, 999, reply=("carol", "r1", False, "id_reused"), probe=True)
    events += [
        fact("carol", "o-carol", AccountOpened("EUR", 0)),
        fact("carol", "r1", Deposited(999)),
    ]
    result = check(h.ops(), events, {"alice": 300, "carol": 999})
    assert result.counts[Anomaly.REUSE] == 1


def test_without_actor_balances_the_fold_is_checked_against_the_accepted_moves() -> None:
    h, events, _ = _bank()
    assert check(h.ops(), events, None).ok
    _ok(h, "alice", "d9", Kind.DEPOSIT, 1)
    events.append(fact("alice", "d9", Deposited(1)))
    events.append(fact("alice", "d9", Deposited(1)))
    bad = check(h.ops(), events, None)
    assert bad.counts[Anomaly.TOTAL] == 1 and bad.counts[Anomaly.DUPLICATE] == 1


# --- transfers ------------------------------------------------------------------------------


def _transfer_run(*, credited: bool) -> tuple[History, list[Any], dict[str, int]]:
    """alice (300 after the bank run) sends 100 to bob, who is credited (or the transfer is
    reversed); answered as it happened."""
    h, events, _ = _bank()
    _ok(h, "bob", "ob", Kind.OPEN)
    code = None if credited else "account_closed"
    _op(h, "alice", "t1", Kind.TRANSFER, 100, reply=("alice", "t1", credited, code))
    events += [fact("bob", "ob", AccountOpened("EUR", 0)), TransferDebited("t1", "bob", 100)]
    if credited:
        events.append(TransferCredited("t1", "alice", 100))
        return h, events, {"alice": 200, "bob": 100}
    events.append(TransferReversed("t1", "bob", 100, "account_closed"))
    return h, events, {"alice": 300, "bob": 0}


def _checked(h: History, events: list[Any], actors: dict[str, int]) -> Any:
    """Check with the transfer events as facts and their money fold, as the run does."""
    facts, money = [], Money()
    for e in events:
        if isinstance(e, EventFact):
            facts.append(e)
            continue
        owner = "alice" if isinstance(e, TransferDebited | TransferReversed) else "bob"
        leg = "" if isinstance(e, TransferDebited) else "/leg"
        facts.append(fact(owner, f"{e.transfer_id}{leg}", e))
        money.add((e,))
    return check(h.ops(), facts, actors, money)


def test_transfers_credited_or_reversed_and_answered_so_are_clean() -> None:
    for credited in (True, False):
        h, events, actors = _transfer_run(credited=credited)
        result = _checked(h, events, actors)
        assert result.ok, (credited, result.to_dict())


def test_a_transfer_answered_against_its_legs_is_caught() -> None:
    h, events, actors = _transfer_run(credited=True)
    h.ops()[-1].answers[0] = Answer("t1", "alice", False, "account_closed", 1.0)
    assert _checked(h, events, actors).counts[Anomaly.TRANSFER] == 1


def test_a_transfer_credited_twice_or_left_in_flight_is_caught() -> None:
    h, events, actors = _transfer_run(credited=True)
    twice = _checked(h, [*events, TransferCredited("t1", "alice", 100)], actors)
    assert twice.counts[Anomaly.TRANSFER] == 1
    h, events, actors = _transfer_run(credited=True)
    stuck = _checked(h, events[:-1], actors)
    assert stuck.counts[Anomaly.IN_FLIGHT] == 1


def test_flows_add_up_per_partition_and_nothing_is_in_flight_when_quiet() -> None:
    flows = {0: Flows(deposited=500, sent={1: 100}), 1: Flows(received={0: 100})}
    views = {0: {"alice": 400}, 1: {"bob": 100}}
    assert flows_problems(views, flows, quiet=True) == []
    in_flight = {0: flows[0], 1: Flows()}
    assert flows_problems({0: {"alice": 400}, 1: {"bob": 0}}, in_flight, quiet=False) == []
    assert flows_problems({0: {"alice": 400}, 1: {"bob": 0}}, in_flight, quiet=True) == [
        "0→1: 100 in flight once quiet"
    ]
    assert flows_problems({0: {"alice": 450}}, {0: flows[0]}, quiet=False) == [
        "partition 0: Σ balances 450, flows say 400"
    ]


def test_confirmations_and_settlements_are_legs_not_phantoms() -> None:
    for event in (
        TransferCompleted("t1", "b"),
        TransferForced("t1", "a", "refund", "ops", "lost"),
    ):
        assert fact("a", "confirm:3:1:a:t1", event).leg


def test_after_a_move_the_pairs_are_checked_together_and_the_moved_money_must_arrive() -> None:
    # bob on 1 sent 100 to alice on 0, then alice (400) moved 0 → 2
    flows = {
        0: Flows(deposited=300, received={1: 100}, moved_out={2: 400}),
        1: Flows(deposited=100, sent={0: 100}),
        2: Flows(moved_in={0: 400}),
    }
    views = {0: {}, 1: {"bob": 0}, 2: {"alice": 400}}
    assert flows_problems(views, flows, quiet=True) == []
    # a transfer debited on 0 whose source then moved to 2 is refunded on 2: the pairs
    # 0→1 and 2→1 do not balance one by one, their sum does
    refunded = {
        0: Flows(deposited=500, sent={1: 100}, moved_out={2: 400}),
        1: Flows(),
        2: Flows(moved_in={0: 400}, refunded={1: 100}),
    }
    assert flows_problems({0: {}, 1: {}, 2: {"alice": 500}}, refunded, quiet=True) == []


def test_after_a_move_money_not_arrived_or_in_flight_is_caught() -> None:
    half = {0: Flows(deposited=400, moved_out={2: 400}), 2: Flows()}
    assert flows_problems({0: {}, 2: {}}, half, quiet=True) == [
        "0→2: moved out 400, moved in 0 once quiet"
    ]
    assert flows_problems({0: {}, 2: {}}, half, quiet=False) == []
    stuck = {
        0: Flows(deposited=500, sent={1: 100}, moved_out={2: 400}),
        1: Flows(),
        2: Flows(moved_in={0: 400}),
    }
    assert flows_problems({0: {}, 1: {}, 2: {"alice": 400}}, stuck, quiet=True) == [
        "all pairs: 100 in flight once quiet"
    ]


def test_an_account_two_actors_hold_is_a_mismatch() -> None:
    h = History()
    result = check(h.ops(), [], {}, held_twice=["alice: held by partitions 0 and 4"])
    assert result.counts[Anomaly.MISMATCH] == 1
    assert result.examples[Anomaly.MISMATCH] == ["alice: held by partitions 0 and 4"]
