"""The failover phase's rows and ratio (its gap is ``eventledger.torture.gap``'s, tested
there)."""

from __future__ import annotations

from bench.model import Failover, FailoverRun, RunResults
from bench.report import build_rows


def _run(standbys: int, gap: float, steps: dict[str, float]) -> FailoverRun:
    return FailoverRun(
        standbys=standbys,
        gap_seconds=gap,
        kill_to_reply_seconds=gap - 0.1,
        kill_to_back_seconds=gap - 0.3,
        kill_to_record_seconds=0.2 if standbys else None,
        steps_ms=steps,
    )


def test_the_failover_rows_hold_the_standbys_gap_against_one_second() -> None:
    failover = Failover(
        keys=200_000,
        ids=200_000,
        rate=200.0,
        runs=[
            _run(1, 0.8, {"halt": 2.0, "fence": 120.4, "total": 400.0}),
            _run(0, 3.2, {"snapshots": 400.0, "ids": 50.0}),
        ],
    )
    rows = build_rows(RunResults(failover=failover))
    assert [(r.value, r.goal) for r in rows] == [
        ("3.20 s", ""),
        ("3.10 / 2.90 s", ""),
        ("snapshots 400, ids 50", ""),
        ("0.80 s", "≤ 1 s ✓"),
        ("0.20 / 0.70 / 0.50 s", ""),
        ("halt 2, fence 120, total 400", ""),
        ("0.25×", ""),
    ]
    assert failover.gap_ratio == 0.25
    assert failover.to_json()["gap_ratio"] == 0.25


def test_a_failed_variant_is_a_failed_row_and_no_ratio() -> None:
    failover = Failover(keys=1, ids=1, rate=1.0, runs=[_run(0, 3.2, {})])
    results = RunResults(failover=failover, failures={"failover:standbys=1": "boom"})
    rows = build_rows(results)
    assert rows[0].measure == "failover (failover:standbys=1)" and rows[0].value == "FAILED"
    assert failover.gap_ratio is None and len(rows) == 4
