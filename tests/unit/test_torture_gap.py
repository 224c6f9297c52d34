"""The answer gap of a fault, from a synthetic history (``eventledger.torture.gap``)."""

from __future__ import annotations

from eventledger.torture.gap import Gap, GapOutcome, answer_gap, gap_summary, longest_silence
from eventledger.torture.history import Answer, History, Kind

PARTITION = {"a": 0, "b": 0, "x": 1, "y": 2}


def _history(*ops: tuple[str, float, list[float]]) -> History:
    """Ops given as (account, sent at, reply times); each ends at its last reply, else at
    its budget's end (10 s after it was sent)."""
    h = History()
    for i, (account, started, replies) in enumerate(ops):
        op = h.begin(
            client=0,
            account=account,
            command_id=f"c{i}",
            kind=Kind.DEPOSIT,
            amount=1,
            started=started,
            budget=10,
        )
        op.attempts = 1
        op.answers.extend(Answer(f"c{i}", account, True, None, at) for at in replies)
        op.ended = replies[-1] if replies else None
    return h


def _gap(h: History, partitions: tuple[int, ...], at: float, until: float | None = None) -> Gap:
    return answer_gap(h.ops(), PARTITION.__getitem__, partitions, at, until)


def test_the_gap_runs_from_the_last_reply_before_to_the_first_after_on_that_partition() -> None:
    h = _history(
        ("a", 0.0, [1.0]),
        ("b", 1.5, [2.0]),  # the last reply of partition 0 before the fault at 5.0
        ("a", 4.0, [7.5]),  # waiting across the fault
        ("b", 6.0, [8.0]),
        ("x", 4.5, [5.5]),  # partition 1 answered meanwhile: not the fault's partition
        ("x", 6.0, [6.1]),
    )
    gap = _gap(h, (0,), 5.0)
    assert (gap.outcome, gap.partition, gap.before, gap.after) == (GapOutcome.MEASURED, 0, 2.0, 7.5)
    assert gap.seconds == 5.5 and str(gap) == "5.50 s"


def test_replies_still_on_their_way_at_the_fault_do_not_end_the_gap() -> None:
    # Partition 0's last batch before the kill at 5.0 was committed; two of its replies
    # arrive at 5.01 and 5.02. The partition then answers again at 8.0, after its recovery
    # (6.0): the gap is the silence 5.02 → 8.0, not 4.9 → 5.01.
    h = _history(
        ("a", 4.0, [4.9]),
        ("b", 4.5, [5.01]),
        ("a", 4.6, [5.02]),
        ("b", 4.8, [8.0]),  # waiting across the fault
        ("a", 8.1, [8.2]),
    )
    gap = _gap(h, (0,), 5.0, 6.0)
    assert (gap.before, gap.after) == (5.02, 8.0)
    # Without the recovery's time the window ends at the first reply after the injection,
    # one still on its way: why ``until`` is needed.
    assert (_gap(h, (0,), 5.0).before, _gap(h, (0,), 5.0).after) == (4.9, 5.01)


def test_the_longest_silence_of_a_window_and_its_open_ends() -> None:
    times = [3.0, 1.0, 9.5, 5.0, 5.5, 7.25]
    assert longest_silence(times, 5.2, 6.0) == (5.5, 7.25)  # window 5.0, 5.5, 7.25
    assert longest_silence(times, 1.0, 6.0) == (1.0, 3.0)  # 1 … 7.25: the first widest
    assert longest_silence(times, 1.0, 7.5) == (7.25, 9.5)
    assert longest_silence(times, 0.5, 2.0) == (None, 3.0)
    assert longest_silence(times, 9.0, 9.6) == (7.25, None)
    assert longest_silence([], 1.0, 2.0) == (None, None)


def test_of_several_partitions_the_worst_one_is_the_fault_s_gap() -> None:
    h = _history(
        ("a", 0.0, [4.0]),
        ("a", 4.5, [6.0]),  # partition 0: 4.0 → 6.0
        ("x", 0.0, [3.0]),
        ("x", 4.0, [9.0]),  # partition 1: 3.0 → 9.0
        ("y", 1.0, [2.0]),  # partition 2: idle at the fault
    )
    gap = _gap(h, (0, 1, 2), 5.0)
    assert (gap.partition, gap.seconds) == (1, 6.0)


def test_no_reply_after_the_fault_outranks_a_measured_gap() -> None:
    h = _history(
        ("a", 0.0, [1.0]),
        ("a", 4.0, [6.0]),
        ("x", 0.0, [1.0]),
        ("x", 4.0, []),  # never answered: partition 1 stayed silent
    )
    gap = _gap(h, (0, 1), 5.0)
    assert (gap.outcome, gap.partition, gap.before, gap.seconds) == (
        GapOutcome.NO_REPLY_AFTER,
        1,
        1.0,
        None,
    )
    assert str(gap) == "no reply after"


def test_a_partition_nobody_was_waiting_on_is_idle_not_a_gap() -> None:
    # Partition 0 answered at 1.0, then nothing was sent until 8.0: the silence across the
    # fault at 5.0 is the clients', not the fault's. An op whose budget ran out before the
    # fault does not count as waiting either.
    h = _history(("a", 0.0, [1.0]), ("b", -20.0, []), ("a", 8.0, [8.1]), ("x", 4.0, [9.0]))
    assert _gap(h, (0,), 5.0).outcome is GapOutcome.IDLE
    assert str(_gap(h, (0,), 5.0)) == "idle"


def test_replies_only_before_the_recovery_are_no_reply_after() -> None:
    h = _history(("a", 0.0, [4.0]), ("b", 4.5, [5.1]), ("a", 4.6, []))
    gap = _gap(h, (0,), 5.0, 7.0)
    assert (gap.outcome, gap.before, gap.seconds) == (GapOutcome.NO_REPLY_AFTER, 4.0, None)


def test_waiting_commands_answered_before_the_recovery_end_the_window() -> None:
    # The kill at 5.0 is recovered (as the nemesis sees it) at 9.0, but a standby took over
    # and answered the waiting commands at 5.8 and 6.4; the run ended before 9.0.
    h = _history(("a", 0.0, [4.0]), ("b", 4.5, [5.8]), ("a", 4.6, [6.4]))
    gap = _gap(h, (0,), 5.0, 9.0)
    assert (gap.outcome, gap.before, gap.after) == (GapOutcome.MEASURED, 4.0, 5.8)
    # One of them never answered: the partition stayed silent.
    h = _history(("a", 0.0, [4.0]), ("b", 4.5, [5.8]), ("a", 4.6, []))
    assert _gap(h, (0,), 5.0, 9.0).outcome is GapOutcome.NO_REPLY_AFTER


def test_no_reply_before_and_no_partition() -> None:
    h = _history(("a", 0.0, [6.0]))
    gap = _gap(h, (0,), 5.0)
    assert (gap.outcome, gap.after, gap.seconds) == (GapOutcome.NO_REPLY_BEFORE, 6.0, None)
    assert _gap(_history(("a", 0.0, [])), (0,), 5.0).outcome is GapOutcome.NO_REPLY_AFTER
    assert _gap(h, (), 5.0) == Gap(GapOutcome.NO_PARTITION)
    assert str(Gap(GapOutcome.NO_PARTITION)) == "-"


def test_a_reply_exactly_at_the_injection_counts_as_before() -> None:
    h = _history(("a", 0.0, [5.0]), ("b", 4.0, [6.0]))
    assert _gap(h, (0,), 5.0).seconds == 1.0


def test_the_summary_gives_count_median_and_max_of_measured_gaps_per_kind() -> None:
    gaps = [
        ("kill", Gap(GapOutcome.MEASURED, 0, 1.0, 3.0)),
        ("kill", Gap(GapOutcome.MEASURED, 0, 1.0, 2.0)),
        ("kill", Gap(GapOutcome.MEASURED, 0, 1.0, 6.0)),
        ("kill", Gap(GapOutcome.NO_REPLY_AFTER, 0, 1.0)),
        ("broker", Gap(GapOutcome.MEASURED, 1, 0.0, 4.0)),
        ("coordinator", Gap(GapOutcome.NO_PARTITION)),
    ]
    assert gap_summary(gaps) == {"kill": (3, 2.0, 5.0), "broker": (1, 4.0, 4.0)}
