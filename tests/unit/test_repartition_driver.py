"""The repartition driver's state machine over a fake application that plays the control
topic, the internal requests and the partitions' slot records (handoff and install as the
design has them), with coordinator restarts in every state, lost and aborted writes, the
parallel limit and the refusals. No broker, no Ray."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import msgspec
import pytest

from actors.control_store import MoveRequest
from actors.coordinator import Coordinator
from actors.repartition_driver import RepartitionDriver, RepartitionRefusedError
from topology.control import (
    ControlRecord,
    DesiredState,
    MoveState,
    RepartitionPhase,
    RepartitionRecord,
    RoutingRecord,
    ServiceRecord,
    drained_partitions,
    serving_partitions,
)
from topology.moves import MoveSlots, SlotRecord
from topology.routing import RoutingTable
from topology.settings import Settings

PER_PARTITION = 8


class LostAckError(RuntimeError):
    """A commit whose outcome the writer never learnt (it did commit)."""


class AbortedError(RuntimeError):
    """A transaction that did not commit."""


class FakeApp:
    """The committed control log and internal requests (the driver's writer), the topics'
    count, the writers that run and each partition's committed slot record (the driver's
    world). ``hand_off`` and ``install`` play the partitions' legs, request by request."""

    def __init__(self, partitions: int, *, slots: bool = True) -> None:
        self.partitions = partitions
        self.grown = partitions
        self.adopted = partitions
        self.slots = partitions * PER_PARTITION
        self.log: list[ControlRecord] = [ServiceRecord(partitions, True)]
        self.requests: list[MoveRequest] = []
        self.consumed: dict[int, int] = {}  # partition → requests of internal[p] handled
        self.parts: list[tuple[MoveSlots, RoutingTable]] = []  # handed off, not installed
        self.records: dict[int, SlotRecord] = {}
        self.pushed: list[RoutingTable] = []
        self.pauses: dict[tuple[int, str], float] = {}
        self.held: dict[int, int] = {}  # partition → aggregates it reports
        self.skipped = 0
        self.failures: list[type[Exception] | None] = []  # per write, in order
        self.desired = self.read()
        if slots:
            self.start_slots()

    # -- the writer ---------------------------------------------------------------------------

    def write(self, *records: ControlRecord, requests: Sequence[MoveRequest] = ()) -> None:
        failure = self.failures.pop(0) if self.failures else None
        if failure is AbortedError:
            raise AbortedError("the transaction aborted")
        self.log.extend(records)
        self.requests.extend(requests)
        if failure is LostAckError:
            raise LostAckError("the commit timed out")

    def read(self) -> DesiredState:
        """The desired state as a restarted coordinator reads it from the topic."""
        return DesiredState.of(self.log)

    # -- the world ----------------------------------------------------------------------------

    def start_slots(self) -> None:
        table = RoutingTable.initial(self.partitions, self.slots)
        for record in (ServiceRecord(self.adopted, True, slots=self.slots), RoutingRecord(table)):
            self.log.append(record)
            self.desired.apply(record)
        for p in range(self.partitions):
            self.records[p] = SlotRecord.initial(p, table)

    def grow_topics(self, partitions: int) -> None:
        if partitions < self.grown:  # as `actors.growth.grow_topics`
            raise ValueError(f"the topics have {self.grown} partitions: a topic never shrinks")
        self.grown = partitions

    def adopt(self, partitions: int) -> None:
        assert self.grown >= partitions, "adopted before the topics grew"
        assert partitions >= self.adopted, "a recorded count never shrinks"
        table = self.desired.routing.table if self.desired.routing else None
        for p in range(self.adopted, partitions):
            if table is not None:
                self.records[p] = SlotRecord.of(table, ())
        self.adopted = max(self.adopted, partitions)
        service = ServiceRecord(self.adopted, True, slots=self.slots if table else 0)
        self.log.append(service)
        self.desired.apply(service)

    def running(self, partition: int) -> bool:
        return partition < self.adopted

    def slot_record(self, partition: int) -> SlotRecord | None:
        return self.records.get(partition)

    def leg_pause_ms(self, partition: int, move_id: str) -> float | None:
        return self.pauses.get((partition, move_id))

    def aggregates(self, partition: int) -> int | None:
        return self.held.get(partition)

    def push_routing(self, table: RoutingTable) -> None:
        self.pushed.append(table)

    # -- the partitions -----------------------------------------------------------------------

    def hand_off(self) -> int:
        """Every source reads its next requests: a move of slots it owns below the move's
        version is handed off; anything else is a duplicate, skipped."""
        handed = 0
        for i, (source, move) in enumerate(self.requests):
            if i < self.consumed.get(source, 0):
                continue
            self.consumed[source] = i + 1
            mine = self.records[source]
            if all(mine.owns(s) and mine.table.moved_at[s] < move.version for s in move.slots):
                table = mine.table.assign(move.slots, move.target, move.version)
                kept = set(mine.slots()) - set(move.slots)
                self.records[source] = SlotRecord.of(table, kept)
                self.parts.append((move, table))
                self.pauses[(source, move.move_id)] = 10.0 + len(self.parts)
                handed += 1
            else:
                self.skipped += 1
        return handed

    def install(self) -> int:
        installed = len(self.parts)
        for move, table in self.parts:
            mine = self.records[move.target]
            merged = mine.table.merge(table)
            self.records[move.target] = SlotRecord.of(merged, {*mine.slots(), *move.slots})
            self.pauses[(move.target, move.move_id)] = 20.0
        self.parts.clear()
        return installed

    def check_published(self) -> None:
        """Invariant 4: the published table names a partition for a moved slot only once
        that partition's slot record took it at that version (it may have given it on since)."""
        routing = self.read().routing
        assert routing is not None
        table = routing.table
        for s, (owner, version) in enumerate(zip(table.owners, table.moved_at, strict=True)):
            mine = self.records[owner]
            took = mine.table.moved_at[s] >= version and (
                mine.owns(s) or mine.table.moved_at[s] > version
            )
            assert took, f"slot {s} published on {owner} at {version} before its install"


def settings(partitions: int) -> Settings:
    return Settings.resolve(
        app_id="t", partitions=partitions, slots_per_partition=PER_PARTITION, environ={}
    )


def driver(app: FakeApp, *, clock: Callable[[], float] | None = None) -> RepartitionDriver:
    """A driver as a (re)started coordinator builds it: the desired state read back."""
    app.desired = app.read()
    ticks = itertools.count(1)
    return RepartitionDriver(
        settings(app.partitions),
        app.desired,
        app,
        threading.RLock(),
        clock=clock or (lambda: float(next(ticks))),
    )


def record_of(app: FakeApp) -> RepartitionRecord:
    record = app.read().repartition
    assert record is not None
    return record


def run(
    d: RepartitionDriver,
    app: FakeApp,
    *,
    until: Callable[[RepartitionRecord], bool] = lambda r: not r.phase.active,
    legs: bool = True,
    ticks: int = 500,
    check: Callable[[RepartitionRecord], None] = lambda r: None,
) -> RepartitionRecord:
    """Tick (and play the legs after each tick) until ``until`` holds."""
    for _ in range(ticks):
        d.step(app)
        record = record_of(app)
        check(record)
        app.check_published()
        if until(record):
            return record
        if legs:
            app.hand_off()
            app.install()
    raise AssertionError(f"not reached in {ticks} ticks: {record_of(app)}")


def in_state(state: MoveState) -> Callable[[RepartitionRecord], bool]:
    return lambda r: any(m.state is state for m in r.moves)


# -- a whole growth ---------------------------------------------------------------------------


def test_a_growth_requests_each_move_once_and_ends_on_the_balanced_table() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 2, rebuilding=set())
    record = run(d, app)
    assert record.phase is RepartitionPhase.DONE and record.error is None
    assert app.grown == 4 and app.adopted == 4
    table = app.read().routing.table  # type: ignore[union-attr]
    assert table.owners == tuple(s % 4 for s in range(16))  # 2 → 4 on a modular table
    assert [m.state for m in record.moves] == [MoveState.PUBLISHED] * len(record.moves)
    assert sorted(s for m in record.moves for s in m.slots) == [s for s in range(16) if s % 4 > 1]
    assert len(app.requests) == len(record.moves) and app.skipped == 0
    assert [m.move_id for _, m in app.requests] == sorted(m.move_id for m in record.moves)
    for m in record.moves:
        assert 0 < m.requested_at <= m.handed_off_at <= m.installed_at <= m.published_at
        assert m.handoff_pause_ms is not None and m.install_pause_ms == 20.0
    assert app.pushed[-1] == table and table.version == record.top_version
    for p in range(4):  # every slot record agrees with the table
        assert set(app.records[p].slots()) == {s for s in range(16) if table.owners[s] == p}


def test_moves_carry_fewer_slots_when_the_partitions_hold_many_aggregates() -> None:
    sizes = {}
    for per_slot in (100, 1_200):  # 5 slots a move fit ACCOUNTS_PER_MOVE; then only 2 do
        app = FakeApp(2)
        app.held = {p: per_slot * PER_PARTITION for p in range(2)}
        d = driver(app)
        d.request(4, 2, rebuilding=set())
        record = run(d, app)
        assert record.phase is RepartitionPhase.DONE
        assert sorted(s for m in record.moves for s in m.slots) == [
            s for s in range(16) if s % 4 > 1
        ]
        sizes[per_slot] = sorted({len(m.slots) for m in record.moves})
    assert sizes == {100: [4], 1_200: [2]}


def test_slots_are_assigned_first_when_the_application_has_none() -> None:
    app = FakeApp(2, slots=False)
    d = driver(app)
    record = d.request(4, 2, rebuilding=set())
    assert record.slots == 16 and app.read().routing is None
    assert run(d, app).phase is RepartitionPhase.DONE
    assert app.read().service == ServiceRecord(4, True, slots=16)


def test_a_plan_without_moves_is_done_at_once() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(2, 2, rebuilding=set())
    record = run(d, app, legs=False)
    assert record.phase is RepartitionPhase.DONE and record.moves == () and app.requests == []


def test_nothing_is_planned_before_every_new_writer_runs() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 2, rebuilding=set())
    app.adopt = lambda partitions: None  # type: ignore[method-assign]
    for _ in range(5):
        d.step(app)
    assert record_of(app).phase is RepartitionPhase.GROWING and app.requests == []
    app.adopted = 4
    d.step(app)
    assert record_of(app).phase is RepartitionPhase.MOVING


# -- the parallel limit, versions, publication ------------------------------------------------


@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_at_most_parallel_sources_are_busy_and_one_move_each(parallel: int) -> None:
    app = FakeApp(4)
    d = driver(app)
    d.request(8, parallel, rebuilding=set())
    seen: list[int] = []

    def check(record: RepartitionRecord) -> None:
        busy = [m.source for m in record.moves if m.state.busy]
        assert len(busy) == len(set(busy)) <= parallel
        seen.append(len(busy))

    record = run(d, app, check=check)
    assert record.phase is RepartitionPhase.DONE and max(seen) == parallel
    for source in range(4):  # one after another, in plan order
        mine = [m for m in record.moves if m.source == source]
        assert [m.version for m in mine] == sorted(m.version for m in mine)
        for earlier, later in itertools.pairwise(mine):
            assert earlier.published_at <= later.requested_at


def test_versions_are_fresh_above_the_table_and_every_earlier_repartition() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 2, rebuilding=set())
    first = run(d, app)
    versions = [m.version for m in first.moves]
    assert len(set(versions)) == len(versions) and min(versions) == 1
    d.request(8, 2, rebuilding=set())
    second = run(d, app)
    assert second.number == 2 and second.base_version == first.top_version
    assert min(m.version for m in second.moves) == first.top_version + 1
    table = app.read().routing.table  # type: ignore[union-attr]
    assert table.counts(8) == [2] * 8 and app.skipped == 0


def test_a_handed_off_move_is_published_only_once_installed() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 1, rebuilding=set())
    run(d, app, until=in_state(MoveState.REQUESTED), legs=False)
    assert app.hand_off() == 1
    for _ in range(3):
        d.step(app)
        app.check_published()
    record = record_of(app)
    assert [m.state for m in record.moves if m.state.busy] == [MoveState.HANDED_OFF]
    assert app.read().routing.table.version == 0  # type: ignore[union-attr]
    app.install()
    d.step(app)
    assert record_of(app).moves[0].state is MoveState.PUBLISHED
    assert app.pushed[-1].version == record.moves[0].version


def test_a_request_the_source_skipped_fails_the_repartition() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 1, rebuilding=set())
    record = run(d, app, until=in_state(MoveState.REQUESTED), legs=False)
    move = next(m for m in record.moves if m.state is MoveState.REQUESTED)
    mine = app.records[move.source]  # the slots went elsewhere, below the move's version
    app.records[move.source] = SlotRecord.of(mine.table, set(mine.slots()) - {move.slots[0]})
    d.step(app)
    failed = record_of(app)
    assert failed.phase is RepartitionPhase.FAILED and failed.error is not None
    assert f"move {move.move_id}" in failed.error


# -- restarts, lost and aborted writes --------------------------------------------------------

# -- shrinks ----------------------------------------------------------------------------------


def test_a_shrink_empties_the_partitions_above_and_grows_nothing() -> None:
    app = FakeApp(4)
    d = driver(app)
    started = d.request(2, 2, rebuilding=set())
    assert (started.from_partitions, started.to_partitions) == (4, 2)
    record = run(d, app)
    assert record.phase is RepartitionPhase.DONE and record.error is None
    assert (app.grown, app.adopted) == (4, 4)  # topics and count stay
    assert app.read().service == ServiceRecord(4, True, slots=32)
    table = app.read().routing.table  # type: ignore[union-attr]
    assert table.counts(4) == [16, 16, 0, 0]
    assert {(m.source, m.target) for m in record.moves} <= {(2, 0), (2, 1), (3, 0), (3, 1)}
    assert len(app.requests) == len(record.moves) and app.skipped == 0
    for p in (2, 3):  # the drained partitions' slot records own nothing
        assert list(app.records[p].slots()) == []
    for p in (0, 1):
        assert set(app.records[p].slots()) == {s for s in range(32) if table.owners[s] == p}
    assert drained_partitions(4, table, record) == (2, 3)
    assert serving_partitions(4, record) == 2


def test_a_shrink_to_one_partition_takes_every_slot_there() -> None:
    app = FakeApp(3)
    d = driver(app)
    d.request(1, 2, rebuilding=set())
    record = run(d, app)
    assert record.phase is RepartitionPhase.DONE
    table = app.read().routing.table  # type: ignore[union-attr]
    assert set(table.owners) == {0} and drained_partitions(3, table, record) == (1, 2)


def test_a_growth_after_a_shrink_takes_the_drained_partitions_before_growing_topics() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 2, rebuilding=set())
    grown = run(d, app)
    d.request(2, 2, rebuilding=set())
    shrunk = run(d, app)
    assert shrunk.from_partitions == 4 and app.grown == 4
    regrown = d.request(3, 2, rebuilding=set())
    assert (regrown.from_partitions, regrown.to_partitions) == (2, 3)
    regrown = run(d, app)
    assert regrown.phase is RepartitionPhase.DONE and (app.grown, app.adopted) == (4, 4)
    table = app.read().routing.table  # type: ignore[union-attr]
    assert sorted(table.counts(4)[:3]) == [5, 5, 6] and table.counts(4)[3] == 0
    assert drained_partitions(4, table, regrown) == (3,)
    d.request(6, 2, rebuilding=set())
    beyond = run(d, app)
    assert beyond.from_partitions == 3 and (app.grown, app.adopted) == (6, 6)
    table = app.read().routing.table  # type: ignore[union-attr]
    assert sorted(table.counts(6)) == [2, 2, 3, 3, 3, 3]
    assert drained_partitions(6, table, beyond) == ()
    versions = [m.version for r in (grown, shrunk, regrown, beyond) for m in r.moves]
    assert len(set(versions)) == len(versions)  # every move of every repartition: fresh
    assert app.skipped == 0 and len(app.requests) == len(versions)
    for p in range(6):  # every slot record agrees with the table
        assert set(app.records[p].slots()) == {s for s in range(16) if table.owners[s] == p}


def test_a_failed_shrink_serves_where_it_started_and_drains_only_empty_partitions() -> None:
    app = FakeApp(4)
    d = driver(app)
    d.request(2, 1, rebuilding=set())
    record = run(d, app, until=in_state(MoveState.PUBLISHED))
    failed = msgspec.structs.replace(record, phase=RepartitionPhase.FAILED, error="x")
    table = app.read().routing.table  # type: ignore[union-attr]
    assert serving_partitions(4, failed) == 4 and drained_partitions(4, table, failed) == ()
    assert drained_partitions(4, table, record) == ()  # partitions 2 and 3 still own slots
    assert drained_partitions(4, None, record) == ()


STATES: list[tuple[str, Callable[[RepartitionRecord], bool], bool]] = [
    ("growing", lambda r: r.phase is RepartitionPhase.GROWING, False),
    ("moving, all planned", lambda r: r.phase is RepartitionPhase.MOVING, False),
    ("requested", in_state(MoveState.REQUESTED), False),
    ("handed off", in_state(MoveState.HANDED_OFF), True),
    ("published", in_state(MoveState.PUBLISHED), True),
    ("done", lambda r: r.phase is RepartitionPhase.DONE, True),
]


@pytest.mark.parametrize("to", [8, 2], ids=["grow", "shrink"])
@pytest.mark.parametrize(("name", "reached", "legs"), STATES, ids=[s[0] for s in STATES])
def test_a_restarted_coordinator_goes_on_from_the_record(
    name: str, reached: Callable[[RepartitionRecord], bool], legs: bool, to: int
) -> None:
    app = FakeApp(4)
    d = driver(app)
    d.request(to, 2, rebuilding=set())
    if name == "growing":
        assert reached(record_of(app))
    elif name == "handed off":  # hand off without installing, then tick once to see it
        run(d, app, until=in_state(MoveState.REQUESTED), legs=False)
        app.hand_off()
        d.step(app)
    else:
        run(d, app, until=reached, legs=legs)
    assert reached(record_of(app))
    before = len(app.requests)
    busy = sum(m.state.busy for m in record_of(app).moves)
    pushed = len(app.pushed)
    restarted = driver(app)  # memory gone: only the control topic is left
    restarted.step(app)
    assert len(app.requests) - before <= 2 - busy  # no requested move is asked again
    record = run(restarted, app)
    assert record.phase is RepartitionPhase.DONE
    assert len(app.requests) == len(record.moves) and app.skipped == 0
    assert len(app.pushed) > pushed  # the new coordinator pushes the table once again
    app.check_published()
    assert app.grown == max(4, to) and app.adopted == max(4, to)


def test_a_restart_between_install_and_publication_publishes() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 1, rebuilding=set())
    run(d, app, until=in_state(MoveState.REQUESTED), legs=False)
    app.hand_off()
    app.install()
    app.failures = [None, AbortedError]  # the legs are recorded; the publication aborts
    with pytest.raises(AbortedError):
        d.step(app)
    assert in_state(MoveState.INSTALLED)(record_of(app))
    record = run(driver(app), app)
    assert record.phase is RepartitionPhase.DONE and app.skipped == 0


def test_a_request_whose_commit_was_not_acknowledged_is_asked_again_at_its_version() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 1, rebuilding=set())
    run(d, app, until=lambda r: r.phase is RepartitionPhase.MOVING, legs=False)
    app.failures = [LostAckError]
    with pytest.raises(LostAckError):
        d.step(app)  # committed, but the driver does not know it
    record = run(d, app)
    assert record.phase is RepartitionPhase.DONE
    first, again = app.requests[0][1], app.requests[1][1]
    assert first == again  # the same move id, version and slots: the source skips the copy
    assert app.skipped == 1 and len(app.requests) == len(record.moves) + 1


def test_an_aborted_request_leaves_nothing_and_is_asked_again() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 1, rebuilding=set())
    run(d, app, until=lambda r: r.phase is RepartitionPhase.MOVING, legs=False)
    app.failures = [AbortedError]
    with pytest.raises(AbortedError):
        d.step(app)
    assert app.requests == [] and not any(m.state.busy for m in record_of(app).moves)
    record = run(d, app)
    assert record.phase is RepartitionPhase.DONE
    assert len(app.requests) == len(record.moves) and app.skipped == 0
    assert record.moves[0].version == 1


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partitions", "parallel", "rebuilding", "says"),
    [
        (4, 2, {1}, "a rebuild is under way on partitions [1]"),
        (17, 2, set(), "must be in 1..16"),
        (0, 2, set(), "must be in 1..16"),
        (4, 0, set(), "--parallel must be >= 1"),
    ],
)
def test_a_repartition_that_may_not_start_is_refused(
    partitions: int, parallel: int, rebuilding: set[int], says: str
) -> None:
    app = FakeApp(2)
    d = driver(app)
    with pytest.raises(RepartitionRefusedError, match=says.replace("[", r"\[")):
        d.request(partitions, parallel, rebuilding=rebuilding)
    assert app.read().repartition is None


def test_the_same_count_follows_the_one_under_way_and_another_is_refused() -> None:
    app = FakeApp(2)
    d = driver(app)
    started = d.request(4, 2, rebuilding=set())
    assert d.request(4, 1, rebuilding=set()) == started
    with pytest.raises(RepartitionRefusedError, match="to 4 partitions is under way"):
        d.request(8, 2, rebuilding=set())
    assert sum(isinstance(r, RepartitionRecord) for r in app.log) == 1
    assert d.active


def test_a_rebuild_is_refused_while_a_repartition_runs() -> None:
    app = FakeApp(2)
    d = driver(app)
    d.request(4, 2, rebuilding=set())
    rebuilds = SimpleNamespace(request=lambda *a: pytest.fail("a rebuild started"))
    coordinator = SimpleNamespace(
        settings=settings(2), _lock=threading.RLock(), repartitions=d, rebuilds=rebuilds
    )
    with pytest.raises(ValueError, match="a repartition is under way"):
        Coordinator.rebuild(coordinator, None)  # type: ignore[arg-type]
    run(d, app)
    coordinator.rebuilds = SimpleNamespace(request=lambda wanted, aggregate: wanted)
    assert Coordinator.rebuild(coordinator, None) == [0, 1]  # type: ignore[arg-type]
