"""The simulator: a short run of many seeds finds nothing, a trace replays exactly, and the
checker finds the bugs it exists for when they are planted (a checker that cannot find a
known bug proves nothing)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from eventledger.sim.checker import InvariantError
from eventledger.sim.partition import SimPartition
from eventledger.sim.run import Outcome, config_for, run_seed, run_seeds, run_trace, shrink
from ledger.decision import Decision
from ledger.internal import CreditTransfer
from ledger.rejections import RejectionCode

decide_module = importlib.import_module("ledger.decide")  # the module
SEEDS = range(100)
STEPS = 600


def test_many_seeds_run_clean() -> None:
    summary = run_seeds(SEEDS, STEPS)
    assert [str(f.violation) for f in summary.failures] == []
    assert summary.seeds == len(SEEDS) and summary.steps == len(SEEDS) * STEPS
    assert summary.operations > len(SEEDS) * 50, "the workload decides commands and legs"
    moves = summary.moves  # a quarter of the seeds repartition online
    assert moves["seeds that repartitioned"] > 10 and moves["accounts moved"] > 10
    assert moves["records forwarded"] > 0 and moves["driver crashes"] > 0


def test_a_seed_replays_exactly_from_its_trace() -> None:
    first = run_seed(7, 400)
    again = run_trace(first.ops, config_for(7))
    assert (again.operations, again.commands, again.violation) == (
        first.operations,
        first.commands,
        first.violation,
    )


def _first_failure(steps: int = 600, seeds: int = 40) -> tuple[int, Outcome, InvariantError]:
    for seed in range(seeds):
        outcome = run_seed(seed, steps)
        if outcome.violation is not None:
            return seed, outcome, outcome.violation
    raise AssertionError("the planted bug was not found")


def test_it_finds_an_id_memory_that_forgets_inside_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forget_everything(self: SimPartition, before_ms: int) -> int:
        n = len(self.ids.values)
        self.ids.values.clear()
        return n

    monkeypatch.setattr(SimPartition, "forget", forget_everything)
    _, _, violation = _first_failure()
    assert violation.rule in {"exactly-once", "replies"}


def test_it_finds_a_credit_dropped_after_its_debit(monkeypatch: pytest.MonkeyPatch) -> None:
    leg = decide_module._leg

    def drop_credits(state: Any, command: Any, context: Any) -> Any:
        if isinstance(command, CreditTransfer):
            return Decision([])  # the planted bug: the credit vanishes
        return leg(state, command, context)

    monkeypatch.setattr(decide_module, "_leg", drop_credits)
    _, _, violation = _first_failure()
    assert violation.rule in {"in-flight", "unanswered"}, str(violation)


def test_it_finds_a_target_at_its_cap_that_strands_the_reservation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leg = decide_module._leg

    def strand(state: Any, command: Any, context: Any) -> Any:
        decided = leg(state, command, context)
        refused = decided.rejection
        if refused is not None and refused.code == RejectionCode.TOO_MANY_OPEN_TRANSFERS:
            return Decision(final=False, rejection=refused)  # the planted bug: no void sent
        return decided

    monkeypatch.setattr(decide_module, "_leg", strand)
    _, _, violation = _first_failure()
    assert violation.rule in {"unanswered", "phantom-pending"}, str(violation)


def test_it_finds_a_target_that_notes_past_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decide_module, "_room_for_credit", lambda state, context: None)
    _, _, violation = _first_failure()
    assert violation.rule == "cap", str(violation)


def test_a_failing_trace_shrinks_and_still_fails_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forget_everything(self: SimPartition, before_ms: int) -> int:
        self.ids.values.clear()
        return 0

    monkeypatch.setattr(SimPartition, "forget", forget_everything)
    seed, outcome, violation = _first_failure()
    short = shrink(outcome, config_for(seed), budget_s=20)
    assert short.violation is not None and short.violation.rule == violation.rule
    assert len(short.ops) < len(outcome.ops)
