"""Takeover on the real broker and Ray, one standby per partition: the writer's process is
killed (kill -9) with commands in flight; its standby takes over (the control record names
it, its stats say RUNNING with the takeover's steps), every command is answered exactly once,
money is conserved, and the promoted member's state equals a fresh restore of its snapshots.
The answer gap is printed, never asserted (no timed assertions on this machine)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from confluent_kafka import TopicPartition

from actors.messages import PartitionStats, PartitionStatus
from actors.ray_state import lookup_actor, partition_actor, writer_member
from actors.restore import restore_partition
from ledger import LEDGER
from topology.codec.aggregate import Codec
from topology.names import NAMESPACE, Names
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

from .conftest import Service, running
from .test_standby import wait_for_standbys
from .traffic import Traffic, assert_exactly_once_and_money_conserved
from .waiting import wait_until


class TimedTraffic(Traffic):
    """Traffic that keeps when each reply arrived (``time.monotonic``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answered_at: list[float] = []

    def _execute(self, command_id: str, account: str, command: Any) -> None:
        super()._execute(command_id, account, command)
        self.answered_at.append(time.monotonic())


@pytest.fixture
def followed(bootstrap: str, app_id: str, state_dir: str, ray_local: None) -> Iterator[Service]:
    settings = Settings.resolve(
        app_id=app_id,
        bootstrap_servers=bootstrap,
        partitions=1,
        state_dir=state_dir,
        standbys=1,
        environ={},
    )
    with running(settings) as served:
        wait_for_standbys(settings)
        yield served


def _pid(_actor: object) -> int:
    return os.getpid()


def test_a_standby_takes_over_a_killed_writer(followed: Service) -> None:
    settings = followed.settings
    traffic = TimedTraffic(followed.client, "to", accounts=6).start()
    traffic.wait_for(60)
    assert writer_member(settings.app_id, 0) == 0
    pid = ray.get(partition_actor(settings.app_id, 0).__ray_call__.remote(_pid), timeout=30)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: writer_member(settings.app_id, 0) == 1, 60, "member 1 to be the writer")
    promoted = ray.get_actor(Names.of(settings).member_actor(0, 1), namespace=NAMESPACE)

    def running_as_writer() -> bool:
        stats: PartitionStats = ray.get(promoted.stats.remote(), timeout=30)
        return stats.status is PartitionStatus.RUNNING

    wait_until(running_as_writer, 60, "member 1 to run as the writer")
    traffic.wait_for(60)
    traffic.stop()
    assert_exactly_once_and_money_conserved(settings, [traffic], LEDGER)

    stats: PartitionStats = ray.get(promoted.stats.remote(), timeout=30)
    assert stats.member == 1 and stats.epoch == 1 and stats.takeover_steps_ms
    # the standby's tail read the replies to their end: the changelog was not read again
    assert "commands" in stats.takeover_steps_ms, stats.takeover_steps_ms
    assert ray.get(partition_actor(settings.app_id, 0).stats.remote(), timeout=30).member == 1
    coordinator = lookup_actor(Names.of(settings).coordinator_actor, NAMESPACE)
    assert coordinator is not None
    # the killed member, restarted by Ray, follows the new writer as its standby
    wait_until(
        lambda: ray.get(coordinator.members.remote(), timeout=30).standbys[0] == [0],
        120,
        "member 0 to follow as a standby",
    )

    layout = TopicLayout.of(settings)
    fresh = restore_partition(
        settings,
        Codec(LEDGER),
        snapshots=TopicPartition(layout.snapshots(stats.generation), 0),
        events=TopicPartition(layout.name(TopicKind.EVENTS), 0),
    )
    restored = {
        k: LEDGER.view(s.state, s.version) for k, s in fresh.store.items() if s.state is not None
    }
    assert ray.get(promoted.views.remote(), timeout=30) == restored
    assert fresh.checkpoint is not None and fresh.checkpoint.seq == stats.seq

    before = max(t for t in traffic.answered_at if t <= killed_at)
    after = min(t for t in traffic.answered_at if t > killed_at)
    print(
        f"\ntakeover: answer gap {(after - before) * 1000:.0f} ms; steps {stats.takeover_steps_ms}"
    )
