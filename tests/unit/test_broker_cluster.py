"""The local cluster's configuration as written: one quorum of every node, distinct ports and
homes, replication factor 3 with min ISR 2 for every topic, the internal ones included; the
single broker stays a node alone with one replica."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventledger.broker import BrokerHome
from eventledger.broker_cluster import ClusterHome, Replicas
from eventledger.torture.broker_faults import led_by
from eventledger.torture.faults import Fault
from eventledger.torture.run import TortureConfig
from topology.topics import TopicLayout


def _props(home: BrokerHome) -> dict[str, str]:
    lines = [ln for ln in home.server_properties().splitlines() if "=" in ln]
    return dict(ln.split("=", 1) for ln in lines)


def test_ports_give_client_then_controller_ports() -> None:
    home = ClusterHome.of(Path("/c"), range(9192, 9198))
    assert home.ports == (9192, 9193, 9194)
    assert home.controller_ports == (9195, 9196, 9197)
    assert home.bootstrap == "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
    assert home.quorum == ((1, 9195), (2, 9196), (3, 9197))
    for ports in ((), (9192, 9193, 9194)):
        with pytest.raises(ValueError, match="two ports per node"):
            ClusterHome.of(Path("/c"), ports)


def test_every_node_is_a_voter_of_one_quorum_with_its_own_ports_and_data() -> None:
    nodes = ClusterHome.of(Path("/c"), range(9192, 9198)).nodes()
    props = [_props(n) for n in nodes]
    voters = "1@127.0.0.1:9195,2@127.0.0.1:9196,3@127.0.0.1:9197"
    assert [p["controller.quorum.voters"] for p in props] == [voters] * 3
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert [p["log.dirs"] for p in props] == [f"/c/node-{i}/data" for i in (1, 2, 3)]
    assert [p["advertised.listeners"] for p in props] == [
        f"PLAINTEXT://127.0.0.1:{port}" for port in (9192, 9193, 9194)
    ]
    assert all(p["process.roles"] == "broker,controller" for p in props)
    assert len({n.pid_file for n in nodes}) == 3


def test_the_cluster_replicates_every_topic_three_times_with_two_in_sync() -> None:
    props = _props(ClusterHome.of(Path("/c"), range(9192, 9198)).nodes()[0])
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    assert int(props["replica.lag.time.max.ms"]) <= 10_000


def test_the_single_broker_stays_a_node_alone_with_one_replica() -> None:
    props = _props(BrokerHome(path=Path("/b")))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["node.id"] == "1"
    for key in (
        "default.replication.factor",
        "min.insync.replicas",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1", key
    assert "replica.lag.time.max.ms" not in props


def test_the_local_cluster_keeps_clear_of_the_single_broker() -> None:
    home = ClusterHome()
    single = BrokerHome()
    assert home.size == 3
    assert not {single.port, single.controller_port} & {*home.ports, *home.controller_ports}
    assert home.path != single.path


@pytest.mark.parametrize(
    ("ports", "controllers"),
    [((), ()), ((1, 2), (3,)), ((1, 2), (2, 3))],
)
def test_ports_must_be_one_pair_per_node_and_distinct(
    ports: tuple[int, ...], controllers: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="port"):
        ClusterHome(path=Path("/c"), ports=ports, controller_ports=controllers)


def test_the_node_faults_refuse_a_single_broker() -> None:
    for fault in (Fault.LEADER, Fault.ISR):
        with pytest.raises(ValueError, match="--brokers 3"):
            TortureConfig(faults=(fault,), brokers=1)
    assert TortureConfig(faults=(Fault.LEADER, Fault.ISR), brokers=3).brokers == 3
    assert TortureConfig(faults=(Fault.BROKER,), brokers=1).brokers == 1


def test_a_node_hits_the_data_partitions_whose_topics_it_leads() -> None:
    layout = TopicLayout("bank", 3, reply_lanes=2)
    described = {
        ("bank.commands", 0): Replicas(1, (1, 2, 3)),
        ("bank.commands", 1): Replicas(2, (1, 2, 3)),
        ("bank.events", 2): Replicas(1, (1, 3)),
        ("bank.replies", 3): Replicas(1, (1, 2)),  # lane 1 of data partition 1
        ("bank.replies", 4): Replicas(3, (1, 2, 3)),
        ("bank.control", 0): Replicas(1, (1, 2, 3)),  # not a data topic
        ("other.commands", 1): Replicas(1, (1,)),
    }
    assert led_by(1, described, layout) == (0, 1, 2)
    assert led_by(2, described, layout) == (1,)
    assert led_by(3, described, layout) == (2,)
    assert led_by(4, described, layout) == ()
