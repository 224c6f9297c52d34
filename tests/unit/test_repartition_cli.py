"""`eventledger repartition` and the status line, over a fake coordinator (no Ray, no
broker): the bars' numbers per source, the moves table, the exit codes and the refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import ray
from rich.console import Console
from typer.testing import CliRunner

from actors.messages import RepartitionProgress, ServiceStatus
from eventledger import service
from eventledger.cli import app
from eventledger.repartition_view import SourceProgress, sources
from eventledger.report import print_moves, print_status
from topology.control import MoveRecord, MoveState, RepartitionPhase, RepartitionRecord

runner = CliRunner()


def _move(i: int, source: int, target: int, state: MoveState, **times: Any) -> MoveRecord:
    return MoveRecord(
        move_id=f"1.{i}",
        source=source,
        target=target,
        slots=tuple(range(i * 5, i * 5 + 5)),
        version=i + 1 if state is not MoveState.PLANNED else 0,
        state=state,
        **times,
    )


MOVING = RepartitionRecord(
    number=1,
    from_partitions=2,
    to_partitions=4,
    slots=480,
    phase=RepartitionPhase.MOVING,
    requested_at=1.0,
    moves=(
        _move(
            0,
            0,
            2,
            MoveState.PUBLISHED,
            requested_at=10.0,
            handed_off_at=10.5,
            installed_at=11.25,
            published_at=11.5,
            handoff_pause_ms=180.0,
            install_pause_ms=320.0,
        ),
        _move(1, 0, 2, MoveState.HANDED_OFF, requested_at=12.0, handed_off_at=12.5),
        _move(2, 1, 3, MoveState.REQUESTED, requested_at=12.0),
        _move(3, 1, 3, MoveState.PLANNED),
    ),
)


def test_each_source_shows_its_slots_and_moves_published_and_its_last_pauses() -> None:
    assert sources(MOVING) == [
        SourceProgress(
            partition=0,
            slots_moved=5,
            slots=10,
            moves_done=1,
            moves=2,
            handoff_pause_ms=None,  # the latest handoff (1.1) reported none
            install_pause_ms=None,
        ),
        SourceProgress(partition=1, slots_moved=0, slots=10, moves_done=0, moves=2),
    ]
    first = msgspec.structs.replace(MOVING, moves=MOVING.moves[:1])
    assert sources(first)[0].handoff_pause_ms == 180.0


def test_the_moves_table_shows_each_legs_time_and_pause() -> None:
    console = Console(record=True, width=160)
    print_moves(console, MOVING)
    text = console.export_text()
    row = next(line for line in text.splitlines() if line.strip().startswith("1.0"))
    assert row.split() == [
        "1.0", "0", "2", "5", "1", "published", "0.50", "s", "0.75", "s", "0.25", "s",
        "180", "ms", "320", "ms",
    ]  # fmt: skip
    assert "planned" in text and "2 → 4 · moving" in text


def test_status_shows_a_repartition_under_way_or_failed_but_not_one_done() -> None:
    def shown(record: RepartitionRecord | None) -> str:
        status = ServiceStatus(
            app_id="demo", partitions=2, bootstrap_servers="b", nodes=[], ticks=1,
            observed_at=None, errors={}, rows=[], rebuilds={}, repartition=record,
        )  # fmt: skip
        console = Console(record=True, width=160)
        print_status(console, status)
        return console.export_text()

    assert "repartition 2 → 4: moving, 1/4 moves published" in shown(MOVING)
    failed = msgspec.structs.replace(MOVING, phase=RepartitionPhase.FAILED, error="skipped")
    assert "repartition 2 → 4: failed, 1/4 moves published (skipped)" in shown(failed)
    done = msgspec.structs.replace(MOVING, phase=RepartitionPhase.DONE)
    assert "repartition" not in shown(done) and "repartition" not in shown(None)


SHRINKING = msgspec.structs.replace(
    MOVING,
    from_partitions=4,
    to_partitions=2,
    moves=(
        _move(0, 2, 0, MoveState.PUBLISHED),
        _move(1, 3, 1, MoveState.PUBLISHED),
        _move(2, 3, 1, MoveState.INSTALLED),
    ),
)


def test_a_shrinks_sources_are_named_drained_once_every_move_of_theirs_is_published() -> None:
    assert [(s.partition, s.slots_moved, s.slots, s.drained) for s in sources(SHRINKING)] == [
        (2, 5, 5, True),
        (3, 5, 10, False),
    ]
    assert not any(s.drained for s in sources(MOVING))  # a growth drains nothing


def test_repartition_follows_a_shrink_as_a_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    done = msgspec.structs.replace(
        SHRINKING,
        phase=RepartitionPhase.DONE,
        moves=tuple(msgspec.structs.replace(m, state=MoveState.PUBLISHED) for m in SHRINKING.moves),
    )
    coordinator = FakeCoordinator(
        lambda n, k: msgspec.structs.replace(SHRINKING, phase=RepartitionPhase.GROWING, moves=()),
        RepartitionProgress(record=SHRINKING),
        RepartitionProgress(record=done),
    )
    result = _invoke(monkeypatch, coordinator, "--partitions", "2")
    assert result.exit_code == 0, result.output
    assert coordinator.calls == [(2, 2)]
    assert "4 → 2 partitions done" in result.output and "15/15 slots · 3/3 moves" in result.output
    assert "partition 2 drained" in result.output and "partition 3 drained" in result.output


class _Remote:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.remote = fn


class FakeCoordinator:
    """Answers ``repartition`` with ``start`` and ``repartition_progress`` with each of
    ``progress`` in turn (the last one again)."""

    def __init__(self, start: Callable[[int, int], RepartitionRecord], *progress: Any) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answers = list(progress)

        def repartition(partitions: int, parallel: int) -> RepartitionRecord:
            self.calls.append((partitions, parallel))
            return start(partitions, parallel)

        def next_progress() -> RepartitionProgress:
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

        self.repartition = _Remote(repartition)
        self.repartition_progress = _Remote(next_progress)


def _invoke(monkeypatch: pytest.MonkeyPatch, coordinator: FakeCoordinator, *args: str) -> Any:
    monkeypatch.setattr(service, "connect_ray", lambda: "fake")
    monkeypatch.setattr(service, "coordinator_or_fail", lambda app_id: coordinator)
    monkeypatch.setattr(ray, "get", lambda value, timeout=None: value)
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    return runner.invoke(app, ["repartition", "--app", "demo", *args])


def test_repartition_follows_to_done_and_prints_the_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    done = msgspec.structs.replace(
        MOVING,
        phase=RepartitionPhase.DONE,
        moves=tuple(msgspec.structs.replace(m, state=MoveState.PUBLISHED) for m in MOVING.moves),
    )
    coordinator = FakeCoordinator(
        lambda n, k: msgspec.structs.replace(MOVING, phase=RepartitionPhase.GROWING, moves=()),
        RepartitionProgress(record=MOVING),
        RepartitionProgress(record=done),
    )
    result = _invoke(monkeypatch, coordinator, "--partitions", "4", "--parallel", "3")
    assert result.exit_code == 0, result.output
    assert coordinator.calls == [(4, 3)]
    assert "2 → 4 partitions done" in result.output and "20/20 slots · 4/4 moves" in result.output
    assert "10/10 slots · 2/2 moves" in result.output  # per source
    assert "1.3" in result.output  # the moves table


def test_a_failed_repartition_exits_1_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = msgspec.structs.replace(
        MOVING, phase=RepartitionPhase.FAILED, error="move 1.2: partition 1 skipped it"
    )
    coordinator = FakeCoordinator(lambda n, k: MOVING, RepartitionProgress(record=failed))
    result = _invoke(monkeypatch, coordinator, "--partitions", "4")
    assert result.exit_code == 1
    assert "repartition failed: move 1.2: partition 1 skipped it" in result.output


def test_a_refused_repartition_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(partitions: int, parallel: int) -> RepartitionRecord:
        raise ValueError("a repartition to 4 partitions is under way: follow it")

    result = _invoke(monkeypatch, FakeCoordinator(refuse, None), "--partitions", "8")
    assert result.exit_code == 1
    assert "a repartition to 4 partitions is under way" in result.output


def test_no_wait_only_starts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    coordinator = FakeCoordinator(
        lambda n, k: msgspec.structs.replace(MOVING, phase=RepartitionPhase.GROWING),
        RepartitionProgress(record=None),  # never asked
    )
    result = _invoke(monkeypatch, coordinator, "--partitions", "4", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "repartition 2 → 4 growing" in result.output


def test_a_repartition_that_does_not_end_in_time_exits_1_with_the_last_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stuck = RepartitionProgress(
        record=msgspec.structs.replace(MOVING, phase=RepartitionPhase.GROWING, moves=()),
        error="NotImplementedError: growing the topics needs grow_topics",
    )
    coordinator = FakeCoordinator(lambda n, k: MOVING, stuck)
    result = _invoke(monkeypatch, coordinator, "--partitions", "4", "--timeout", "0")
    assert result.exit_code == 1
    assert "not finished after 0s (growing, 0/0 moves)" in result.output
    assert "grow_topics" in result.output
