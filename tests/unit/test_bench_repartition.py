"""The repartition phase's pure parts: the latency windows, the legs' pauses from the
record, and its rows (the peer row says why Kafka Streams cannot)."""

from __future__ import annotations

from bench.model import RepartitionRun, RunResults
from bench.repartition import KSTREAMS_CANNOT, answer_gaps, latency_ms, pauses
from bench.report import build_rows
from topology.control import MoveRecord, MoveState, RepartitionPhase, RepartitionRecord


def test_latency_is_taken_per_window_of_scheduled_sends() -> None:
    samples = [(float(s), s + (0.010 if s < 5 else 0.200)) for s in range(10)]
    before = latency_ms(samples, 0.0, 5.0)
    during = latency_ms(samples, 5.0, 10.0)
    assert before["n"] == during["n"] == 5
    assert round(before["p50"]) == 10 and round(during["p99"]) == 200
    assert latency_ms(samples, 20.0, 30.0) == {"n": 0}


def _move(source: int, target: int, handoff: float | None, install: float | None) -> MoveRecord:
    return MoveRecord(
        move_id=f"{source}-{target}-{handoff}",
        source=source,
        target=target,
        slots=(source,),
        state=MoveState.PUBLISHED,
        handoff_pause_ms=handoff,
        install_pause_ms=install,
    )


def test_pauses_per_leg_and_per_partition_over_the_moves() -> None:
    record = RepartitionRecord(
        number=1,
        from_partitions=4,
        to_partitions=8,
        slots=960,
        phase=RepartitionPhase.DONE,
        requested_at=0.0,
        moves=(
            _move(0, 4, 100.0, 300.0),
            _move(0, 4, 50.0, 40.0),
            _move(1, 5, 80.0, None),
        ),
    )
    p = pauses(record)
    assert p["handoff"] == {"p50": 80.0, "max": 100.0}
    assert p["install"] == {"p50": 170.0, "max": 300.0}
    assert p["partition_max"] == {0: 100.0, 1: 80.0, 4: 300.0}
    assert p["partition_max_p50"] == 100.0


def test_the_rows_hold_the_pauses_against_one_second_and_name_the_missing_peer() -> None:
    run = RepartitionRun(
        keys=50_000,
        rate=200.0,
        from_partitions=4,
        to_partitions=8,
        switch_seconds=12.0,
        moving_seconds=10.0,
        moves=96,
        slots=960,
        slots_moved=480,
        accounts_moved=25_000,
        accounts_per_second=2_500.0,
        pauses={
            "handoff": {"p50": 120.0, "max": 400.0},
            "install": {"p50": 200.0, "max": 1_200.0},
            "partition_max": {0: 400.0, 4: 1_200.0},
            "partition_max_p50": 800.0,
        },
        latency_ms={"before": {"n": 1000, "p50": 4.0, "p99": 9.0}, "during": {"n": 0}},
        answer_gaps_ms={
            "growing": {"per_partition": {0: 300.0}, "p50": 300.0, "max": 300.0},
            "moving": {"per_partition": {0: 700.0}, "p50": 700.0, "max": 700.0},
        },
        peer=KSTREAMS_CANNOT,
    )
    rows = build_rows(RunResults(repartition=run))
    values = [(r.system, r.value, r.goal) for r in rows]
    assert ("eventledger", "12.0 s (10.0 s)", "") in values
    assert ("eventledger", "120 / 400 ms", "≤ 1 s ✓") in values
    assert ("eventledger", "200 / 1200 ms", "≤ 1 s ✗") in values
    assert ("eventledger", "4.0 / 9.0 ms (n=1,000)", "") in values
    gaps = {r.measure.split("answer gap ")[1]: r.value for r in rows if "answer gap" in r.measure}
    assert gaps == {
        "while growing (request → first move), p50 / max over partitions": "300 / 300 ms",
        "while moving (first move → done), p50 / max over partitions": "700 / 700 ms",
    }
    assert rows[-1].system == "kstreams" and rows[-1].value.startswith("cannot online")
    assert not any("deposits" in r.measure and "during" in r.measure for r in rows)  # n = 0


def test_answer_gaps_are_each_partitions_longest_silence_in_the_window() -> None:
    replies = [(0, 1.0), (0, 1.1), (0, 1.6), (1, 1.2), (1, 1.3), (2, 1.5), (0, 9.0)]
    gaps = answer_gaps(replies, 1.0, 2.0)
    assert {p: round(ms) for p, ms in gaps["per_partition"].items()} == {0: 500, 1: 100}
    assert round(gaps["max"]) == 500 and round(gaps["p50"]) == 300
    assert {p: round(at, 1) for p, at in gaps["began_at"].items()} == {0: 0.1, 1: 0.2}
    assert answer_gaps(replies, 5.0, 6.0) == {}
