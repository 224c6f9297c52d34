"""The service on a local three-node Kafka cluster (``eventledger.broker_cluster``): its topics
get three replicas and ``min.insync.replicas`` 2 from the cluster's defaults, and commands and
transfers go on, exactly once, while the leader of a commands partition is killed -9 and
started again; money is conserved.

Slow (three JVMs, Ray and the service on a small machine): ``-m slow`` runs it
(``docs/testing.md``)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from actors.audit import read_events
from actors.kafka import admin_config
from eventledger.broker_cluster import BrokerCluster, ClusterHome, describe_partitions
from eventledger.runtime import free_port
from ledger import LEDGER, Deposit, Deposited, OpenAccount, TransferCredited, TransferDebited
from topology.partitioner import partition_for
from topology.topics import TopicKind, TopicLayout

from .conftest import app_settings, running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerCluster]:
    home = ClusterHome.of(tmp_path_factory.mktemp("cluster"), [free_port() for _ in range(6)])
    cluster = BrokerCluster(home)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_commands_go_on_when_a_leader_is_killed(
    kafka_cluster: BrokerCluster, ray_local: None, state_dir: str
) -> None:
    settings = app_settings(kafka_cluster.bootstrap, state_dir, partitions=2)
    layout = TopicLayout.of(settings)
    with running(settings) as service:
        client = service.client
        # Topics of three replicas, all in sync, with two required (the cluster's defaults).
        names = [s.name for s in layout.specs()]
        described = describe_partitions(kafka_cluster.bootstrap, names)
        assert len(described) == sum(s.partitions for s in layout.specs())
        assert all(r.isr == (1, 2, 3) and r.leader in (1, 2, 3) for r in described.values())
        admin = AdminClient(admin_config(settings))
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
        for resource, future in admin.describe_configs(resources).items():
            assert future.result(timeout=30)["min.insync.replicas"].value == "2", resource

        accounts = ["acct-0", "acct-1", "acct-2", "acct-3"]
        assert {partition_for(a.encode(), 2) for a in accounts} == {0, 1}
        for a in accounts:
            assert client.execute(a, OpenAccount("EUR")).accepted
            assert client.execute(a, Deposit(1_000)).accepted

        # Kill -9 the node that leads the commands partition of the first account.
        commands = layout.name(TopicKind.COMMANDS)
        p = partition_for(accounts[0].encode(), 2)
        leader = describe_partitions(kafka_cluster.bootstrap, [commands])[(commands, p)].leader
        node = kafka_cluster.nodes[leader]
        pid = node.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while node.pid() is not None:
            time.sleep(0.05)

        # Commands and transfers across partitions complete with one node down ...
        moved = 0
        for i in range(6):
            source, target = accounts[i % 4], accounts[(i + 1) % 4]
            assert client.transfer(source, target, 10 + i).accepted
            moved += 10 + i
        assert client.execute(accounts[0], Deposit(5)).accepted
        survivors = [n for n in kafka_cluster.nodes.values() if n is not node]
        now = describe_partitions(survivors[0].home.bootstrap, [commands])[(commands, p)]
        assert now.leader != leader and leader not in now.isr

        # ... and after it is back.
        kafka_cluster.start()
        assert client.transfer(accounts[3], accounts[0], 7).accepted
        moved += 7

        balances = {a: client.reads.view(a) for a in accounts}
        assert all(v is not None for v in balances.values())
        assert sum(v.balance for v in balances.values() if v is not None) == 4 * 1_000 + 5

        # The committed events say the same: every deposit once, every transfer once.
        mine = [e for e in read_events(settings, LEDGER) if e.envelope.aggregate_id in accounts]
        deposited = sum(e.event.amount for e in mine if isinstance(e.event, Deposited))
        debited = sum(e.event.amount for e in mine if isinstance(e.event, TransferDebited))
        credited = sum(e.event.amount for e in mine if isinstance(e.event, TransferCredited))
        assert deposited == 4 * 1_000 + 5
        assert debited == credited == moved
