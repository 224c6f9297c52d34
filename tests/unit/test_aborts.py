"""The repeated-abort policy: back off, isolate, set aside, block."""

from topology.aborts import AbortAction, AbortPolicy


def test_a_transient_abort_is_retried_after_a_growing_pause() -> None:
    policy = AbortPolicy()
    assert policy.aborted(50) is AbortAction.RETRY
    first = policy.pause()
    assert policy.aborted(50) is AbortAction.RETRY
    assert policy.pause() == 2 * first
    policy.committed()
    assert policy.batch_limit(1000) == 1000 and policy.aborts == 0


def test_a_batch_that_keeps_aborting_is_isolated_then_its_first_record_set_aside() -> None:
    policy = AbortPolicy(isolate_after=3, set_aside_after=2)
    actions = [policy.aborted(50) for _ in range(3)]
    assert actions == [AbortAction.RETRY, AbortAction.RETRY, AbortAction.ISOLATE]
    assert policy.batch_limit(1000) == 1
    assert policy.aborted(1) is AbortAction.ISOLATE
    assert policy.aborted(1) is AbortAction.SET_ASIDE
    policy.committed(set_aside=True)
    assert policy.batch_limit(1000) == 1000


def test_a_second_record_failing_alone_right_after_a_set_aside_blocks() -> None:
    policy = AbortPolicy(isolate_after=1, set_aside_after=1)
    assert policy.aborted(1) is AbortAction.ISOLATE
    assert policy.aborted(1) is AbortAction.SET_ASIDE
    policy.committed(set_aside=True)
    assert policy.aborted(1) is AbortAction.ISOLATE
    assert policy.aborted(1) is AbortAction.BLOCK


def test_a_commit_with_events_between_set_asides_does_not_block() -> None:
    policy = AbortPolicy(isolate_after=1, set_aside_after=1)
    policy.aborted(1)
    assert policy.aborted(1) is AbortAction.SET_ASIDE
    policy.committed(set_aside=True)
    policy.committed(wrote_events=True)
    policy.aborted(1)
    assert policy.aborted(1) is AbortAction.SET_ASIDE


def test_commits_without_events_between_set_asides_still_block() -> None:
    policy = AbortPolicy(isolate_after=1, set_aside_after=1)
    policy.aborted(1)
    assert policy.aborted(1) is AbortAction.SET_ASIDE
    policy.committed(set_aside=True)
    policy.committed(wrote_events=False)  # e.g. a retry answered from memory
    policy.aborted(1)
    assert policy.aborted(1) is AbortAction.BLOCK


def test_the_pause_is_capped() -> None:
    policy = AbortPolicy(max_pause=1.0)
    for _ in range(30):
        policy.aborted(10)
    assert policy.pause() == 1.0
