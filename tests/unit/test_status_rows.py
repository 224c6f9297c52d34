"""``eventledger status`` rows as the coordinator builds them: given what Ray and the actor
report, then this typed state (no Ray here: the observations are built by hand)."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from rich.console import Console

from actors.members import members_of
from actors.messages import PartitionStats, PartitionStatus, RowState, ServiceStatus
from actors.ray_state import ActorInfo, RayState
from actors.status import row_state, service_status, status_row
from actors.supervisor import Observation, PartitionActual
from eventledger.report import print_status
from topology.control import PartitionRecord, RepartitionPhase, RepartitionRecord
from topology.placement import ActorPhase
from topology.routing import RoutingTable
from topology.settings import Settings

R = RowState


def _stats(status: PartitionStatus, *, paused: bool = False) -> PartitionStats:
    return PartitionStats(
        partition=0,
        status=status,
        error=None,
        aggregates=5,
        generation=2,
        paused=paused,
        rss_bytes=0,
        ids_disk_bytes=0,
        committed_offset=90,
        last_commit_at=99.0,
    )


def _actual(state: RayState, stats: PartitionStats | None, restarts: int = 0) -> PartitionActual:
    return PartitionActual(0, ActorInfo(None, state, "node-a", restarts), stats)


@pytest.mark.parametrize(
    ("status", "paused", "rebuilding", "expected"),
    [
        (PartitionStatus.RUNNING, False, False, R.RUNNING),
        (PartitionStatus.RUNNING, True, False, R.PAUSED),
        (PartitionStatus.RUNNING, True, True, R.PAUSED),
        (PartitionStatus.RUNNING, False, True, R.REBUILDING),
        (PartitionStatus.BLOCKED, True, True, R.BLOCKED),
        (None, False, False, R.RUNNING),  # alive, did not answer this tick
    ],
)
def test_a_running_actor_is_running_paused_rebuilding_or_blocked(
    status: PartitionStatus | None, paused: bool, rebuilding: bool, expected: RowState
) -> None:
    assert row_state(ActorPhase.RUNNING, status, paused=paused, rebuilding=rebuilding) is expected


@pytest.mark.parametrize(
    ("phase", "status", "expected"),
    [
        (ActorPhase.STARTING, PartitionStatus.RESTORING, R.RESTORING),
        (ActorPhase.RESTARTING, None, R.RESTARTING),
        (ActorPhase.MISSING, None, R.MISSING),
        (ActorPhase.BROKEN, PartitionStatus.FENCED, R.FENCED),
        (ActorPhase.BROKEN, PartitionStatus.STOPPED, R.STOPPED),
        (ActorPhase.BROKEN, PartitionStatus.FAILED, R.FAILED),
    ],
)
def test_an_actor_not_running_shows_why(
    phase: ActorPhase, status: PartitionStatus | None, expected: RowState
) -> None:
    assert row_state(phase, status, paused=True, rebuilding=True) is expected


def test_every_row_state_is_reached_and_only_two_take_commands() -> None:
    reached = {
        row_state(phase, status, paused=paused, rebuilding=rebuilding)
        for phase, status, paused, rebuilding in itertools.product(
            ActorPhase, [None, *PartitionStatus], [False, True], [False, True]
        )
    }
    assert reached == set(RowState)
    assert {s for s in RowState if s.takes_commands} == {R.RUNNING, R.REBUILDING}


def test_a_row_from_the_observation_and_the_desired_record() -> None:
    desired = PartitionRecord(0, generation=2, paused=False, node_id="node-a", starts=3)
    actual = _actual(RayState.ALIVE, _stats(PartitionStatus.RUNNING, paused=True), restarts=1)
    row = status_row(0, desired, actual=actual, end=100, rebuild=None, now=100.0)
    assert (row.state, row.node, row.generation, row.aggregates) == (R.PAUSED, "node-a", 2, 5)
    assert (row.committed_offset, row.lag, row.last_commit_age) == (90, 10, 1.0)
    assert row.restarts == 1 + 2  # Ray's restarts in place, and the coordinator's replacements


def test_a_row_before_any_observation_shows_the_desired_state() -> None:
    desired = PartitionRecord(1, generation=4, node_id="node-b")
    row = status_row(1, desired, actual=None, end=None, rebuild=None, now=0.0)
    assert (row.state, row.node, row.generation, row.lag) == (R.MISSING, "node-b", 4, None)


@pytest.mark.parametrize(
    ("state", "stats", "expected"),
    [
        (RayState.PENDING_CREATION, None, R.RESTORING),
        (RayState.DEPENDENCIES_UNREADY, None, R.RESTORING),
        (RayState.RESTARTING, None, R.RESTARTING),
        (RayState.DEAD, None, R.MISSING),
        (RayState.ALIVE, _stats(PartitionStatus.RESTORING), R.RESTORING),
        (RayState.ALIVE, _stats(PartitionStatus.FENCED), R.FENCED),
    ],
)
def test_ray_states_and_actor_statuses_become_row_states(
    state: RayState, stats: PartitionStats | None, expected: RowState
) -> None:
    row = status_row(
        0, PartitionRecord(0), actual=_actual(state, stats), end=0, rebuild=None, now=0
    )
    assert row.state is expected


def _member(member: int, seq: int | None, state: RayState = RayState.ALIVE) -> PartitionActual:
    stats = None
    if seq is not None:
        running = PartitionStatus.RUNNING if member == 0 else PartitionStatus.FOLLOWING
        stats = msgspec.structs.replace(_stats(running), member=member, seq=seq)
    return PartitionActual(0, ActorInfo(None, state, "node-a", 0), stats, member)


def test_a_row_shows_each_standbys_commits_behind_its_writer() -> None:
    standbys = [_member(1, 37), _member(2, None)]
    row = status_row(
        0, PartitionRecord(0), actual=_member(0, 40), end=90, rebuild=None, now=100.0,
        standbys=standbys,
    )  # fmt: skip
    assert row.standby_lags == {1: 3, 2: None}  # member 2 did not answer
    quiet = status_row(0, PartitionRecord(0), actual=_member(0, None), end=90, rebuild=None,
                       now=100.0, standbys=[_member(1, 37)])  # fmt: skip
    assert quiet.standby_lags == {1: None}  # the writer did not answer


def test_a_row_names_the_recorded_writer_and_its_epoch() -> None:
    taken_over = PartitionRecord(0, writer=1, epoch=2)
    row = status_row(0, taken_over, actual=_member(1, 40), end=90, rebuild=None, now=100.0,
                     standbys=[_member(0, 40)])  # fmt: skip
    assert (row.writer, row.epoch) == (1, 2)
    assert row.standby_lags == {0: 0}


def test_readers_are_told_of_standbys_that_follow_or_are_alive_and_silent() -> None:
    observed = {
        (0, 1): _member(1, 5),
        (1, 1): _member(1, None),  # alive, did not answer this tick: still listed
        (2, 1): _member(1, None, RayState.RESTARTING),
    }
    failed = msgspec.structs.replace(_stats(PartitionStatus.FAILED), member=1)
    observed[(3, 1)] = PartitionActual(3, ActorInfo(None, RayState.ALIVE, "n", 0), failed, 1)
    tick = Observation(["node-a"], [], {}, 0.0, {}, observed)
    assert members_of(tick, 4).standbys == {0: [1], 1: [1], 2: [], 3: []}
    assert members_of(None, 2).standbys == {0: [], 1: []}


def test_status_shows_the_table_version_and_each_partitions_slots_new_ones_unobserved() -> None:
    settings = Settings.resolve(app_id="grow", partitions=4, environ={})
    tick = Observation(
        ["node-a"],
        [_actual(RayState.ALIVE, _stats(PartitionStatus.RUNNING))],
        {0: 100},
        100.0,
        {},
        {},
    )  # observed before partitions 1..3 existed
    table = RoutingTable.initial(2, 480).assign([1], 2, 3)
    desired = {p: PartitionRecord(p) for p in range(4)}
    status = service_status(settings, tick, desired, errors={}, ticks=1, rebuilds={}, routing=table)
    assert (status.slots, status.routing_version) == (480, 3)
    assert [r.slots for r in status.rows] == [240, 239, 1, 0]
    assert [r.state for r in status.rows] == [R.RUNNING, R.MISSING, R.MISSING, R.MISSING]
    plain = service_status(settings, tick, desired, errors={}, ticks=1, rebuilds={})
    assert (plain.slots, plain.routing_version) == (0, None)
    assert {r.slots for r in plain.rows} == {None}


def test_status_names_drained_the_partitions_a_shrink_emptied() -> None:
    settings = Settings.resolve(app_id="shrink", partitions=4, environ={})
    table = RoutingTable(tuple(s % 2 for s in range(8)), (0,) * 4 + (1,) * 4)
    desired = {p: PartitionRecord(p) for p in range(4)}
    shrink = RepartitionRecord(
        number=2, from_partitions=4, to_partitions=2, slots=8,
        phase=RepartitionPhase.DONE, requested_at=1.0,
    )  # fmt: skip

    def status(repartition: RepartitionRecord | None) -> ServiceStatus:
        return service_status(
            settings, None, desired, errors={}, ticks=1, rebuilds={}, routing=table,
            repartition=repartition,
        )  # fmt: skip

    shrunk = status(shrink)
    assert [(r.slots, r.drained) for r in shrunk.rows] == [
        (4, False),
        (4, False),
        (0, True),
        (0, True),
    ]
    console = Console(record=True, width=200)
    print_status(console, shrunk)
    text = console.export_text()
    assert "2 drained" in text and text.count("drained") == 3
    growing = msgspec.structs.replace(shrink, to_partitions=4, phase=RepartitionPhase.MOVING)
    assert not any(r.drained for r in status(growing).rows)  # to be filled, not drained
