"""The states that cross Ray calls know their legal moves."""

import pytest

from actors.messages import IllegalTransitionError, PartitionStatus, ShadowPhase


def test_a_partition_restores_before_it_runs_and_fenced_or_failed_are_final() -> None:
    status = PartitionStatus.STOPPED.move(PartitionStatus.RESTORING)
    status = status.move(PartitionStatus.RUNNING)
    assert status.move(PartitionStatus.RESTORING) is PartitionStatus.RESTORING  # re-created
    with pytest.raises(IllegalTransitionError):
        PartitionStatus.STOPPED.move(PartitionStatus.RUNNING)
    for final in (PartitionStatus.FENCED, PartitionStatus.FAILED):
        assert not any(final.can_move_to(s) for s in PartitionStatus if s is not final)


def test_a_blocked_partition_goes_on_only_through_a_restore() -> None:
    blocked = PartitionStatus.BLOCKED
    assert blocked.can_move_to(PartitionStatus.RESTORING)
    assert not blocked.can_move_to(PartitionStatus.RUNNING)


def test_a_finished_or_failed_shadow_stays_so() -> None:
    phase = ShadowPhase.RESUMING.move(ShadowPhase.REPLAYING).move(ShadowPhase.CAUGHT_UP)
    assert phase.replaying and phase.move(ShadowPhase.FINISHED) is ShadowPhase.FINISHED
    with pytest.raises(IllegalTransitionError):
        ShadowPhase.FINISHED.move(ShadowPhase.REPLAYING)
    with pytest.raises(IllegalTransitionError):
        ShadowPhase.FAILED.move(ShadowPhase.FINISHED)
    assert not ShadowPhase.FINISHED.replaying and not ShadowPhase.FAILED.replaying
