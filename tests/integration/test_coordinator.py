"""The coordinator on a multi-node Ray cluster (``ray.cluster_utils.Cluster``) and the real
broker: supervision beyond Ray's restarts, node loss and gain, its own restart, and an online
rebuild under load. Every test keeps commands flowing while it breaks something, then checks
that no accepted command was lost or applied twice and that money is conserved."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import ray

from actors.audit import read_named_topic
from actors.client import LedgerClient
from actors.deployment import deploy_coordinator, find_coordinator, stop_service
from actors.messages import (
    PartitionStatus,
    RebuildProgress,
    RowState,
    ServiceStatus,
    StatusRow,
)
from actors.ray_state import partition_actor
from ledger.aggregate import LEDGER
from tests.conftest import CLUSTER_NODE
from tests.integration.conftest import app_settings
from tests.integration.schema_bump import LEDGER_V2
from tests.integration.traffic import Traffic, assert_exactly_once_and_money_conserved
from tests.integration.waiting import wait_until
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.codec.keys import TOUCH_KEY
from topology.control import RebuildPhase
from topology.settings import Settings
from topology.topics import TopicLayout

RESTARTING = (Exception,)
"""What a status query may raise while the actor it asks is being replaced: not yet."""

TICK = 0.3

# A scenario of one and a half minutes on a quiet machine and several on a loaded one (a
# two-node cluster, four faults in turn under traffic): the slow group (`make test-slow`).
# `make test` keeps `test_placement_resources.py` on a cluster and `test_control_plane.py`
# for the coordinator's own failures; `eventledger torture --faults node,coordinator`
# breaks nodes and coordinators under the bank workload.
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@dataclass
class Served:
    """The module's one service (three partitions, through its coordinator) and every
    traffic it has had: the tests take turns breaking it (the rebuild into a new layout
    last), and each checks money over the whole service, every earlier traffic included."""

    settings: Settings
    traffics: list[Traffic]

    def traffic(self, client: LedgerClient, prefix: str) -> Traffic:
        """A traffic of ``prefix`` started on ``client``, counted in every later check."""
        traffic = Traffic(client, prefix)
        self.traffics.append(traffic)
        return traffic.start()


@pytest.fixture(scope="module")
def served(ray_cluster: Any, bootstrap: str, state_dir: str) -> Iterator[Served]:
    """One service for the module (a deployment on the cluster takes seconds); stopped after."""
    settings = app_settings(bootstrap, state_dir, partitions=3)
    deploy_coordinator(settings, LEDGER, tick_seconds=TICK, timeout=120)
    try:
        yield Served(settings, [])
    finally:
        stop_service(settings.app_id)


def _status(settings: Settings) -> ServiceStatus:
    coordinator = find_coordinator(settings.app_id)
    assert coordinator is not None
    status: ServiceStatus = ray.get(coordinator.status.remote(), timeout=30)
    return status


def _own_actor_id(_: Any) -> str:
    actor_id: str = ray.get_runtime_context().get_actor_id()
    return actor_id


def _actor_id(handle: Any) -> str:
    """The id the actor's own runtime context reports (Ray's public API)."""
    actor_id: str = ray.get(handle.__ray_call__.remote(_own_actor_id), timeout=30)
    return actor_id


def _all_running(settings: Settings, nodes: set[str] | None = None) -> bool:
    rows = _status(settings).rows
    return all(r.state is RowState.RUNNING and (nodes is None or r.node in nodes) for r in rows)


def _per_node(settings: Settings) -> Counter[str]:
    return Counter(r.node for r in _status(settings).rows)


def _back(row: StatusRow, killed: int) -> bool:
    """The partition's killed writer member is replaced: a standby took over (the killed
    member then comes back as a standby) or, with none, the coordinator restarted it; every
    member reports."""
    if row.epoch == 0:
        return row.restarts >= 1
    return row.writer != killed and row.standby_lags.get(killed, None) is not None


def test_an_actor_killed_beyond_its_restarts_comes_back(served: Served) -> None:
    settings = served.settings
    assert len(_per_node(settings)) == 2, "three partitions spread over both nodes"
    with LedgerClient(settings, timeout=30) as client:
        traffic = served.traffic(client, "kill")
        traffic.wait_for(60)
        killed = _status(settings).rows[1].writer
        ray.kill(partition_actor(settings.app_id, 1), no_restart=True)  # no Ray restart
        wait_until(
            lambda: _back(_status(settings).rows[1], killed) and _all_running(settings),
            60,
            "the coordinator to bring partition 1 back",
            tolerate=RESTARTING,
        )
        traffic.wait_for(60)
        traffic.stop()
    assert_exactly_once_and_money_conserved(settings, served.traffics, LEDGER)


def test_actors_spread_onto_a_new_node_and_come_back_when_it_dies(
    served: Served, ray_cluster: Any
) -> None:
    settings = served.settings
    with LedgerClient(settings, timeout=30) as client:
        traffic = served.traffic(client, "nodes")
        traffic.wait_for(40)
        node = ray_cluster.add_node(**CLUSTER_NODE)
        wait_until(
            lambda: _per_node(settings)[node.node_id] == 1 and _all_running(settings),
            90,
            "one partition to move onto the new node",
            tolerate=RESTARTING,
        )
        assert set(_per_node(settings).values()) == {1}, "one partition per node"
        traffic.wait_for(40)
        ray_cluster.remove_node(node, allow_graceful=False)
        survivors = {n["NodeID"] for n in ray.nodes() if n["Alive"]} - {node.node_id}
        wait_until(
            lambda: _all_running(settings, survivors),
            90,
            "the lost node's partition to come back on the others",
            tolerate=RESTARTING,
        )
        traffic.wait_for(40)
        traffic.stop()
    assert_exactly_once_and_money_conserved(settings, served.traffics, LEDGER)


def test_a_killed_coordinator_comes_back_with_the_same_desired_state(served: Served) -> None:
    settings = served.settings
    coordinator = find_coordinator(settings.app_id)
    before = ray.get(coordinator.desired_state.remote())
    writers = {
        p: _actor_id(partition_actor(settings.app_id, p)) for p in range(settings.partitions)
    }
    epochs = {
        p: ray.get(partition_actor(settings.app_id, p).stats.remote()).epoch
        for p in range(settings.partitions)
    }
    with LedgerClient(settings, timeout=30) as client:
        traffic = served.traffic(client, "coord")
        traffic.wait_for(40)
        ray.kill(coordinator, no_restart=False)  # Ray restarts it: the constructor re-reads
        wait_until(
            lambda: _status(settings).ticks > 2 and _all_running(settings),
            60,
            "the coordinator to come back",
            tolerate=RESTARTING,
        )
        traffic.wait_for(40)
        traffic.stop()
    after = ray.get(find_coordinator(settings.app_id).desired_state.remote())
    assert after.partitions == before.partitions
    assert after.rebuilds == before.rebuilds
    assert after.service is not None
    assert after.service.serving and after.service.partitions == 3
    # The same actor still writes each partition, at the same takeover epoch, and runs: the
    # restart started no second writer (one would have fenced this one, and been recorded).
    # Its producer may have been re-created meanwhile: a commit that timed out on a slow
    # broker does that, whatever the coordinator does.
    for p, actor_id in writers.items():
        assert _actor_id(partition_actor(settings.app_id, p)) == actor_id
        stats = ray.get(partition_actor(settings.app_id, p).stats.remote())
        assert stats.status is PartitionStatus.RUNNING and stats.epoch == epochs[p]
    assert_exactly_once_and_money_conserved(settings, served.traffics, LEDGER)


def test_rebuild_under_load_into_a_new_state_layout(served: Served) -> None:
    settings = served.settings
    coordinator = find_coordinator(settings.app_id)
    with LedgerClient(settings, timeout=30) as client:
        traffic = served.traffic(client, "rebuild")
        traffic.wait_for(250)
        started = ray.get(coordinator.rebuild.remote(None, LEDGER_V2))
        assert started == [0, 1, 2]
        wait_until(
            lambda: all(
                r.phase is RebuildPhase.DONE
                for r in ray.get(coordinator.rebuild_progress.remote()).values()
            ),
            120,
            "every partition to switch to generation 1",
            tolerate=RESTARTING,
        )
        traffic.wait_for(60)
        traffic.stop()
    progress: dict[int, RebuildProgress] = ray.get(coordinator.rebuild_progress.remote())
    assert {r.record.generation for r in progress.values()} == {1}
    assert all(r.record.events > 0 and r.pause_steps_ms for r in progress.values())
    assert [r.generation for r in _status(settings).rows] == [1, 1, 1]
    folded = assert_exactly_once_and_money_conserved(settings, served.traffics, LEDGER_V2)
    # Generation 1 holds every aggregate in layout 2, equal to the fold of its events, with
    # the field only a replay could fill in.
    layout = TopicLayout.of(settings)
    latest: dict[str, Any] = {}
    checkpoints: dict[int, int] = {}
    for msg in read_named_topic(settings, layout.snapshots(1)):
        if msg.key() == CHECKPOINT_KEY:
            checkpoints[msg.partition()] = decode_checkpoint(msg.value()).next_offset
        elif msg.key() != TOUCH_KEY:
            latest[msg.key().decode()] = Codec(LEDGER_V2).snapshots.decode(msg.value()).slot.state
    assert latest == folded
    # The new generation also says where each partition's commands resume (sealed at the
    # switch, then moved by every commit): a restart now restores state and position from it.
    committed = {
        p: ray.get(partition_actor(settings.app_id, p).stats.remote()).committed_offset
        for p in range(settings.partitions)
    }
    assert checkpoints == committed
    accepted_moves = sum(
        1 for t in served.traffics for cid, r in t.replies.items() if r.accepted and "-cmd-" in cid
    )
    assert sum(s.movements for s in folded.values()) == accepted_moves
