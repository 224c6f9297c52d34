"""The control plane's own failures, injected against the real broker and a real local Ray.

The coordinator runs as a plain object ticked by the test (its partition actors and shadows
are real Ray actors), so each fault lands at a known step. After every fault the service
must converge: every partition runs, on the desired generation, unpaused, with no shadow
left and no rebuild in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import ray

from actors.audit import read_named_topic
from actors.client import LedgerClient
from actors.control_store import ControlWriter
from actors.coordinator import MAX_WRITE_FAILURES, ControlPlaneError, Coordinator
from actors.kafka import FencedError
from actors.messages import PartitionStats, PartitionStatus, ShadowPhase
from actors.ray_state import ActorInfo, RayState, describe_actor, lookup_actor, partition_actor
from actors.reads import Reads
from actors.rebuild_driver import MAX_ATTEMPTS
from actors.supervisor import observe_partitions, retire
from actors.transactional import TransactionalWriter
from ledger import LEDGER
from ledger.commands import Deposit, OpenAccount
from ledger.state import AccountView
from tests.integration.waiting import wait_until
from topology.control import ControlRecord, RebuildPhase, RebuildRecord
from topology.names import NAMESPACE, Names
from topology.partitioner import partition_for
from topology.placement import ActorPhase
from topology.settings import Settings
from topology.topics import TopicLayout

T = TypeVar("T")

SETTLE_S = 180
"""How long a convergence may take: a bound on a hang, not a timing claim."""

ROUNDS = 600
"""Ticks a broken control writer may take to stop the coordinator."""


@pytest.fixture
def settings(bootstrap: str, app_id: str) -> Settings:
    return Settings.resolve(app_id=app_id, bootstrap_servers=bootstrap, partitions=2, environ={})


@pytest.fixture
def coordinator(settings: Settings, ray_local: None) -> Iterator[Coordinator]:
    c = Coordinator(settings, LEDGER, start=False)
    try:
        converge(c)
        yield c
    finally:
        c.rebuilds.stop_all()
        for p in range(settings.partitions):
            retire(Names.of(settings).partition_actor(p), graceful=False)


def converged(c: Coordinator) -> bool:
    app, partitions = c.settings.app_id, c.settings.partitions
    for a in observe_partitions(app, partitions):
        desired = c.desired.partition(a.partition)
        if a.observed.phase is not ActorPhase.RUNNING or a.stats is None or a.stats.paused:
            return False
        if a.stats.generation != desired.generation or desired.paused:
            return False
    shadows = [lookup_actor(Names(app).shadow_actor(p), NAMESPACE) for p in range(partitions)]
    return not c.rebuilds.active() and all(s is None for s in shadows)


def converge(c: Coordinator) -> None:
    try:
        tick_until(c, lambda: converged(c), "convergence")
    except AssertionError as e:
        raise AssertionError(f"not converged: {c.status()}") from e


def tick_until(c: Coordinator, done: Callable[[], T | None], what: str) -> T:
    """Tick the coordinator by hand until ``done()`` returns something truthy; that."""

    def ticked() -> T | None:
        c.tick()
        return done()

    return wait_until(ticked, SETTLE_S, what)


def back(info: ActorInfo | None) -> bool:
    """Whether the actor described by ``info`` has restarted and is alive."""
    return info is not None and info.restarts >= 1 and info.state is RayState.ALIVE


def hook_writes(c: Coordinator, before: Callable[[tuple[ControlRecord, ...]], None]) -> None:
    """Run ``before(records)`` ahead of every control write (the coordinator's and the
    rebuild driver's: they share the writer)."""
    writer: ControlWriter = c.writer
    original = writer.write

    def write(*records: ControlRecord) -> None:
        before(records)
        original(*records)

    writer.write = write  # type: ignore[method-assign]


def is_done(records: tuple[ControlRecord, ...]) -> bool:
    return any(isinstance(r, RebuildRecord) and r.phase is RebuildPhase.DONE for r in records)


def some_traffic(settings: Settings) -> None:
    with LedgerClient(settings, timeout=60) as client:
        for f in [client.send(f"a{i}", OpenAccount("EUR")) for i in range(8)]:
            assert f.result(60).accepted
        for f in [client.send(f"a{i % 8}", Deposit(10 + i)) for i in range(40)]:
            assert f.result(60).accepted


def test_the_control_writer_recovers_after_a_timed_out_commit(coordinator: Coordinator) -> None:
    c = coordinator
    c.writer.writer.end_timeout = 0  # every commit times out: the producer is left dead
    ray.kill(partition_actor(c.settings.app_id, 1), no_restart=True)
    tick_until(c, lambda: c.writer.failures >= 1, "a failed control write")
    assert "place" in c.status().errors
    c.writer.writer.end_timeout = 30  # the fault passes
    converge(c)
    assert c.writer.failures == 0 and c.writer.writer.recreations >= 1
    assert c.desired.partition(1).starts == 2


@pytest.mark.slow  # 16 s: a writer's repeated failure; the timed-out commit above runs by default
def test_a_writer_that_keeps_failing_stops_the_coordinator_and_a_new_one_converges(
    coordinator: Coordinator,
) -> None:
    c = coordinator
    c.writer.writer.end_timeout = 0
    ray.kill(partition_actor(c.settings.app_id, 0), no_restart=True)
    with pytest.raises(ControlPlaneError, match="in a row") as caught:
        for _ in range(ROUNDS):
            c.tick()
    assert not caught.value.fenced and c.writer.failures == MAX_WRITE_FAILURES
    successor = Coordinator(c.settings, LEDGER, start=False)  # what Ray's restart runs
    converge(successor)


def test_a_fenced_control_writer_stops_the_coordinator(coordinator: Coordinator) -> None:
    c = coordinator
    TransactionalWriter(c.settings, f"{c.settings.app_id}-coordinator").open()
    ray.kill(partition_actor(c.settings.app_id, 0), no_restart=True)
    with pytest.raises(ControlPlaneError, match="fenced") as caught:
        for _ in range(ROUNDS):
            c.tick()
    assert caught.value.fenced
    converge(Coordinator(c.settings, LEDGER, start=False))


def test_an_actor_restarted_before_its_switch_is_recorded_is_replaced(
    coordinator: Coordinator,
) -> None:
    c = coordinator
    some_traffic(c.settings)
    name = Names.of(c.settings).partition_actor(0)
    restarted: list[int] = []

    def restart_the_actor(records: tuple[ControlRecord, ...]) -> None:
        if is_done(records) and not restarted:
            # switch_generation has returned; the actor restarts before the record commits
            ray.kill(partition_actor(c.settings.app_id, 0), no_restart=False)
            wait_until(lambda: back(describe_actor(name, NAMESPACE)), SETTLE_S, "the restart")
            restarted.append(
                ray.get(partition_actor(c.settings.app_id, 0).stats.remote()).generation
            )

    hook_writes(c, restart_the_actor)
    assert c.rebuild([0]) == [0]
    converge(c)
    assert restarted == [0], "the restarted actor came back on the old generation"
    assert c.desired.partition(0).generation == 1
    with LedgerClient(c.settings, timeout=60) as client:
        assert client.execute("a0", Deposit(1)).accepted
    with Reads(c.settings, AccountView) as reads:
        account = reads.view("a0")
    assert account is not None and account.balance == 10 + 18 + 26 + 34 + 42 + 1


def test_an_interrupted_switch_retires_and_fences_its_shadow(coordinator: Coordinator) -> None:
    c = coordinator
    some_traffic(c.settings)
    tid = Names.of(c.settings).shadow_txn(0)
    zombie: list[TransactionalWriter] = []

    def fail_the_record(records: tuple[ControlRecord, ...]) -> None:
        if is_done(records) and not zombie:
            zombie.append(TransactionalWriter(c.settings, tid))
            zombie[0].open()  # a shadow producer still alive somewhere
            c.writer.writer.end_timeout = 0  # this write times out: the switch is interrupted
        else:
            c.writer.writer.end_timeout = 30

    hook_writes(c, fail_the_record)
    assert c.rebuild([0]) == [0]
    converge(c)
    assert c.desired.partition(0).generation == 1 and zombie
    assert c.desired.rebuilds[0].phase is RebuildPhase.DONE
    topic = TopicLayout.of(c.settings).snapshots(1)
    with pytest.raises(FencedError), zombie[0].transaction():
        zombie[0].produce(topic, b"stale", b"a0", 0)
        zombie[0].poll(1.0)


def checkpointed(settings: Settings) -> bool:
    """Whether a shadow of partition 0 has committed a checkpoint into generation 1."""
    topic = TopicLayout.of(settings).snapshots(1)
    return any(True for _ in read_named_topic(settings, topic, [0]))


def test_a_failed_rebuilds_partial_generation_is_not_reused(coordinator: Coordinator) -> None:
    c = coordinator
    some_traffic(c.settings)
    c.rebuilds.tail = -1  # never switch: this rebuild is to fail
    assert c.rebuild([0]) == [0]
    name = Names.of(c.settings).shadow_actor(0)
    resumed: list[int] = []

    def failed() -> bool:
        """Whether the rebuild failed; else kill its shadow once it has caught up."""
        if c.desired.rebuilds[0].phase is RebuildPhase.FAILED:
            return True
        shadow = c.rebuilds.progress()[0].shadow
        caught_up = shadow is not None and shadow.phase is ShadowPhase.CAUGHT_UP
        if shadow is not None and caught_up and checkpointed(c.settings):
            resumed.append(shadow.resumed_from)
            handle = lookup_actor(name, NAMESPACE)
            assert handle is not None
            ray.kill(handle, no_restart=True)  # the shadow dies
            c.rebuilds._progress.pop(0, None)
        return False

    tick_until(c, failed, "the rebuild failed")
    assert len(resumed) == MAX_ATTEMPTS and max(resumed) > 0, "generation 1 holds checkpoints"
    assert c.desired.rebuilds[0].generation == 1

    c.rebuilds.tail = 2_000
    assert c.rebuild([0]) == [0]
    assert c.desired.rebuilds[0].generation == 2, "a generation no rebuild wrote into"
    shadow = tick_until(c, lambda: c.rebuilds.progress()[0].shadow, "a shadow started")
    assert shadow.resumed_from == 0
    converge(c)
    assert c.desired.partition(0).generation == 2


def _break_the_loop_and_its_reopening(member: Any) -> None:
    """Runs inside a partition's writer member: its next transaction meets a dead producer,
    and the reopening that follows fails after the consumer is created (the broker
    unreachable)."""
    from confluent_kafka import KafkaError, KafkaException

    import actors.opening

    def unreachable(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "injected: broker unreachable"))

    writer = member.writer._writer
    real = writer._producer

    class Dead:
        def begin_transaction(self) -> None:
            raise KafkaException(KafkaError(KafkaError._FATAL, "injected: dead", fatal=True))

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    actors.opening.watermarks = unreachable  # type: ignore[attr-defined]
    writer._producer = Dead()


def test_an_actor_whose_reopening_fails_is_failed_and_replaced(coordinator: Coordinator) -> None:
    c = coordinator
    handle = partition_actor(c.settings.app_id, 0)
    ray.get(handle.__ray_call__.remote(_break_the_loop_and_its_reopening))
    key = next(f"k{i}" for i in range(100) if partition_for(f"k{i}".encode(), 2) == 0)
    with LedgerClient(c.settings, timeout=120) as client:
        reply = client.send(key, OpenAccount("EUR"))

        def gave_up() -> PartitionStats | None:  # ticked by hand: nothing replaces it yet
            stats: PartitionStats = ray.get(handle.stats.remote())
            running = (PartitionStatus.RUNNING, PartitionStatus.RESTORING)
            return None if stats.status in running else stats

        stats = wait_until(gave_up, SETTLE_S, "the actor to give up")
        assert stats.status is PartitionStatus.FAILED and "unreachable" in stats.error
        converge(c)  # the supervisor replaced it
        assert reply.result(120).accepted
    assert describe_actor(Names.of(c.settings).partition_actor(0), NAMESPACE) is not None
