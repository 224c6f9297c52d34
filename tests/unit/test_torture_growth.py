"""The repartition fault's pure parts: the counts it grows to, and a repartition's
progress summed up from its record (moves published, the legs' pauses)."""

from __future__ import annotations

from eventledger.torture.faults import Fault, default_partitions, parse_faults
from eventledger.torture.growth import next_count, summarize
from topology.control import MoveRecord, MoveState, RepartitionPhase, RepartitionRecord


def test_the_fault_grows_4_to_8_then_12_then_stops() -> None:
    assert next_count(4, 4) == 8
    assert next_count(4, 8) == 12
    assert next_count(4, 12) is None
    assert next_count(3, 3) == 6


def test_the_repartition_fault_runs_the_app_on_4_partitions() -> None:
    assert parse_faults("repartition,kill") == [Fault.REPARTITION, Fault.KILL]
    assert default_partitions([Fault.REPARTITION, Fault.KILL]) == 4
    assert default_partitions([Fault.KILL]) == 3


def _move(n: int, state: MoveState, handoff: float | None, install: float | None) -> MoveRecord:
    return MoveRecord(
        move_id=f"m{n}",
        source=n % 4,
        target=4 + n % 4,
        slots=(n,),
        version=n + 1,
        state=state,
        handoff_pause_ms=handoff,
        install_pause_ms=install,
    )


def test_a_summary_counts_moves_and_takes_pauses_over_the_legs_that_reported() -> None:
    record = RepartitionRecord(
        number=1,
        from_partitions=4,
        to_partitions=8,
        slots=960,
        phase=RepartitionPhase.MOVING,
        requested_at=100.0,
        moves=(
            _move(0, MoveState.PUBLISHED, 40.0, 90.0),
            _move(1, MoveState.INSTALLED, 60.0, 30.0),
            _move(2, MoveState.HANDED_OFF, 200.0, None),
            _move(3, MoveState.REQUESTED, None, None),
            _move(4, MoveState.PLANNED, None, None),
        ),
    )
    s = summarize(record)
    assert (s.moves, s.published, s.handed_off) == (5, 1, 3)
    assert (s.handoff_p50, s.handoff_max) == (60.0, 200.0)
    assert (s.install_p50, s.install_max) == (60.0, 90.0)
    assert s.seconds is None
    assert "4 → 8 moving, 1/5 moves published" in str(s)


def test_a_finished_repartition_has_its_duration_and_a_failed_one_its_reason() -> None:
    done = RepartitionRecord(
        number=2,
        from_partitions=8,
        to_partitions=12,
        slots=960,
        phase=RepartitionPhase.FAILED,
        requested_at=100.0,
        finished_at=112.5,
        error="no routing table",
    )
    s = summarize(done)
    assert s.seconds == 12.5
    assert (s.handoff_max, s.install_max) == (None, None)
    assert str(s).endswith("12.5 s: no routing table")
