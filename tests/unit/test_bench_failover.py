"""The failover phase's rows (its gap is ``eventledger.torture.gap``'s, tested there)."""

from __future__ import annotations

from bench.model import Failover, RunResults
from bench.report import build_rows


def test_the_failover_rows_hold_the_gap_against_one_second() -> None:
    failover = Failover(
        keys=200_000,
        ids=200_000,
        rate=200.0,
        gap_seconds=3.2,
        kill_to_reply_seconds=3.1,
        kill_to_actor_seconds=2.9,
        restore_seconds=0.4,
        restored_records=200_000,
        ids_restore_seconds=0.05,
        ids_restored=12,
    )
    rows = build_rows(RunResults(failover=failover))
    assert [(r.value, r.goal) for r in rows] == [
        ("3.20 s", "≤ 1 s ✗"),
        ("3.10 / 2.90 s", ""),
        ("0.40 / 0.05 s", ""),
    ]
    assert build_rows(RunResults(failures={"failover": "boom"}))[-1].value == "FAILED"
