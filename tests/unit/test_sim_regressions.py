"""Regressions found by the simulator: each trace broke an invariant on the code before
issue 19's fixes (the seed that first found it is named), and must replay clean now.

Accounts by partition (3 partitions): ca, cc, ce, cf on 1; cb, cd on 2; cg on 0.
"""

from __future__ import annotations

from typing import Final

import pytest

from eventledger.sim.ops import Advance, Batch, Crash, Op, Resume, Send, Settle, Stop
from eventledger.sim.partition import Fault
from eventledger.sim.run import run_seed, run_trace
from eventledger.sim.world import SimConfig
from ledger.commands import (
    CloseAccount,
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from ledger.state import MAX_MINOR_UNITS

CONFIG: Final = SimConfig(partitions=3, reply_lanes=2, window_ms=10_000, skews_ms=(0, 0, 0))
T0: Final = CONFIG.start_ms
MAX: Final = MAX_MINOR_UNITS


def _open(*accounts: str, currency: str = "EUR", at: int = T0) -> list[Op]:
    return [Send(0, a, OpenAccount(currency), f"open-{a}", at) for a in accounts]


def _run_all() -> list[Op]:
    return [Batch(p, 64, 0) for p in (0, 1, 2, 0, 1, 2)]


def _clean(ops: list[Op]) -> None:
    outcome = run_trace(ops, CONFIG)
    assert outcome.violation is None, str(outcome.violation)


def test_the_same_transfer_id_from_two_sources_lands_twice() -> None:
    """Seed 2 (in flight once quiet): legs were keyed by (target, transfer id)."""
    _clean(
        [
            *_open("ca", "cb", "cc"),
            Send(0, "ca", Deposit(100), "d1", T0),
            Send(0, "cc", Deposit(100), "d2", T0),
            *_run_all(),
            Send(0, "ca", Transfer("cb", 40), "inv-1", T0),
            Send(1, "cc", Transfer("cb", 40), "inv-1", T0),
            *_run_all(),
        ]
    )


def test_cumulative_flows_past_int64_never_wedge_a_partition() -> None:
    """Seed 4 (blocked: OverflowError in the checkpoint): six legal commands wedged p1."""
    ops: list[Op] = [*_open("ca", "cc"), Batch(1, 64, 0)]
    for i in range(3):
        ops += [Send(0, "ca", Deposit(MAX), f"d{i}", T0), Batch(1, 64, 0)]
        ops += [Send(0, "ca", Withdraw(MAX), f"w{i}", T0), Batch(1, 64, 0)]
    ops += [Send(0, "cc", Deposit(5), "d-other", T0), Batch(1, 64, 0)]
    _clean(ops)


@pytest.mark.parametrize("late_by", [0, 9_000])
def test_a_credit_that_arrives_past_the_window_still_lands(late_by: int) -> None:
    """Seed 2 (in flight once quiet): a leg's window ran from the client's first attempt, so a
    target down past it (or a late, legal retry) refused the credit after the debit."""
    first = T0 - late_by  # a retry from another process passes its first attempt
    _clean(
        [
            *_open("ca", "cb"),
            Send(0, "ca", Deposit(10), "d", T0),
            *_run_all(),
            Stop(2),
            Send(0, "ca", Transfer("cb", 10), "t", first),
            Batch(1, 64, 0),
            Advance(12_000),
            Resume(2),
            *_run_all(),
        ]
    )


def test_no_refund_lands_in_a_closed_account() -> None:
    """Seed 80 (closed account with a balance): the source closed while its transfer was in
    flight, then the refund of the refused credit arrived."""
    _clean(
        [
            *_open("ca"),
            *_open("cg", currency="USD"),
            Send(0, "ca", Deposit(40), "d", T0),
            *_run_all(),
            Stop(0),
            Send(0, "ca", Transfer("cg", 40), "t", T0),
            Batch(1, 64, 0),
            Send(0, "ca", CloseAccount(), "close", T0),
            Batch(1, 64, 0),
            Resume(0),
            *_run_all(),
        ]
    )


def test_a_pending_id_reused_after_the_window_leaves_no_phantom_reservation() -> None:
    """Read in the code: a reservation whose id came back after the window overwrote the
    open one (pending_debits counted both)."""
    _clean(
        [
            *_open("ca", "cb"),
            Send(0, "ca", Deposit(100), "d", T0),
            *_run_all(),
            Send(0, "ca", Transfer("cb", 30, pending=True), "t", T0),
            *_run_all(),
            Advance(11_000),
            Crash(1, forget=True),
            Send(0, "ca", Transfer("cb", 20, pending=True), "t", T0 + 11_000),
            *_run_all(),
            Send(0, "ca", PostPending("t"), "post", T0 + 11_000),
            *_run_all(),
        ]
    )


def test_a_balance_never_passes_int64_through_pending_credits() -> None:
    """Seed 172 (int64): deposits ignored pending credits, so a settlement overflowed."""
    _clean(
        [
            *_open("ca", "cb"),
            Send(0, "ca", Deposit(10), "d", T0),
            *_run_all(),
            Send(0, "ca", Transfer("cb", 10, pending=True), "t", T0),
            *_run_all(),
            Send(0, "cb", Deposit(MAX), "big", T0),
            *_run_all(),
            Send(0, "ca", PostPending("t"), "post", T0),
            *_run_all(),
        ]
    )


def test_a_restore_keeps_the_later_decision_of_an_id_seen_on_two_lanes() -> None:
    """Seed 149 (exactly-once): a restore read the replies partitions lane by lane, so an
    older entry of an id decided again after its window overwrote the newer one."""
    _clean(
        [
            Send(1, "cb", VoidPending("x"), "inv-3", T0),
            Batch(2, 64, 0),
            Advance(20_000),
            Crash(2, forget=True),
            Send(0, "cb", PostPending("y"), "inv-3", T0 + 20_000),
            Batch(2, 64, 0),
            Crash(2, forget=True),
            Send(0, "cb", Deposit(46), "inv-3", T0 + 21_000),
            Batch(2, 64, 0),
        ]
    )


def test_a_client_id_like_a_legs_never_gets_the_legs_entry_as_its_reply() -> None:
    """Found reading the simulator's replies check: a leg's entry in the memory named its
    leg id, which a client may also use on the target's account."""
    _clean(
        [
            *_open("ca", "cb"),
            Send(0, "ca", Deposit(10), "d", T0),
            *_run_all(),
            Send(0, "ca", Transfer("cb", 10, pending=True), "t", T0),
            *_run_all(),
            Send(0, "ca", PostPending("t"), "post", T0),
            Send(0, "cb", Withdraw(1), "t/settle", T0),
            *_run_all(),
        ]
    )


def test_a_post_after_the_expiry_is_told_the_reservation_expired() -> None:
    """Seed 9 (late-finish): once the expiry had voided a reservation, a post was answered
    `unknown_pending`, not `pending_expired`."""
    _clean(
        [
            *_open("ca", "cb"),
            Send(0, "ca", Deposit(10), "d", T0),
            *_run_all(),
            Send(0, "ca", Transfer("cb", 10, pending=True, timeout_ms=100), "t", T0),
            *_run_all(),
            Advance(200),
            *_run_all(),
            Send(0, "ca", PostPending("t"), "post", T0 + 200),
            *_run_all(),
        ]
    )


def test_a_lost_reservation_note_settled_after_its_release_leaves_no_credit_noted() -> None:
    """Seed 34 at 10,000 steps (phantom-pending): an operator redrove a lost note after the
    source had voided the reservation, and the target noted a credit nothing would end."""
    _clean(
        [
            *_open("ca", "cb"),
            Send(0, "ca", Deposit(10), "d", T0),
            *_run_all(),
            Send(0, "ca", Transfer("cb", 10, pending=True), "t", T0),
            Batch(1, 64, 0),
            Batch(2, 1, 0, Fault.SET_ASIDE_LEG),
            Send(0, "ca", VoidPending("t"), "void", T0),
            *_run_all(),
            Settle(2, refund=False),
            *_run_all(),
        ]
    )


def test_a_lost_settlement_refunded_by_an_operator_releases_the_noted_credit() -> None:
    """Seed 191 at 10,000 steps (phantom-pending): refusing a lost settlement sent the money
    back but left the target's noted credit open."""
    _clean(
        [
            *_open("ca", "cb"),
            Send(0, "ca", Deposit(10), "d", T0),
            *_run_all(),
            Send(0, "ca", Transfer("cb", 10, pending=True), "t", T0),
            *_run_all(),
            Send(0, "ca", PostPending("t"), "post", T0),
            Batch(1, 64, 0),
            Batch(2, 1, 0, Fault.SET_ASIDE_LEG),
            Settle(2, refund=True),
            *_run_all(),
        ]
    )


def test_a_stale_writer_meets_a_refund_its_successor_sent() -> None:
    """Seeds 33, 188 and 373 of the long form (1,000 × 10,000, with takeovers): a zombie
    writer woke to a refund of a transfer its successor had sent, which its state did not
    hold; the refund took the balance past int64 and the view failed to encode. The trace
    shrinks no shorter than about 6,700 ops, so the seed itself is replayed (about 4 s)."""
    outcome = run_seed(373, 10_000)
    assert outcome.violation is None, str(outcome.violation)
