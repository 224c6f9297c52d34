"""Topic creation against the real broker, and our partitioner against librdkafka's."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType

from actors.admin import TopicMismatchError, ensure_topics
from actors.kafka import bootstrap_config, producer_config
from topology.partitioner import partition_for
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout


def test_topics_are_created_idempotently(bootstrap: str, app_id: str) -> None:
    layout = TopicLayout(app_id, 3)
    ensure_topics(bootstrap, layout)
    ensure_topics(bootstrap, layout)  # second time: checks, creates nothing, no error
    topics = AdminClient(bootstrap_config(bootstrap)).list_topics(timeout=10).topics
    for kind in TopicKind:
        assert len(topics[layout.name(kind)].partitions) == 3


def test_an_existing_topic_with_the_wrong_layout_is_refused(bootstrap: str, app_id: str) -> None:
    layout = TopicLayout(app_id, 2)
    admin = AdminClient(bootstrap_config(bootstrap))
    wrong = layout.name(TopicKind.SNAPSHOTS)
    admin.create_topics([NewTopic(wrong, 3, 1)])[wrong].result(30)  # 3 partitions, delete policy
    with pytest.raises(TopicMismatchError) as caught:
        ensure_topics(bootstrap, layout)
    assert wrong in str(caught.value)
    assert "partition" in str(caught.value) and "cleanup.policy" in str(caught.value)


def test_created_topics_carry_min_isr_and_differing_replication_is_reported(
    bootstrap: str, app_id: str
) -> None:
    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=1, environ={}
    )  # replication -1: the local broker's default.replication.factor, 1
    layout = TopicLayout.of(settings)
    ensure_topics(settings, layout)
    admin = AdminClient(bootstrap_config(bootstrap))
    events = ConfigResource(ResourceType.TOPIC, layout.name(TopicKind.EVENTS))
    isr = admin.describe_configs([events])[events].result(30)["min.insync.replicas"]
    assert (isr.value, isr.source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    topic = admin.list_topics(timeout=10).topics[layout.name(TopicKind.EVENTS)]
    assert len(topic.partitions[0].replicas) == 1

    for wanted, problem in [
        ({"replication_factor": 2}, "has replication factor 1, expected 2"),
        ({"min_insync_replicas": 2}, "min.insync.replicas is 1, expected 2"),
    ]:
        other = Settings.resolve(
            app_id=app_id, bootstrap_servers=bootstrap, partitions=1, environ={}, **wanted
        )
        with pytest.raises(TopicMismatchError) as caught:
            ensure_topics(other, layout)
        assert f"{layout.name(TopicKind.EVENTS)}: {problem}" in str(caught.value)


def test_python_partitioner_matches_librdkafka_murmur2_random(bootstrap: str, app_id: str) -> None:
    settings = Settings.resolve(app_id=app_id, bootstrap_servers=bootstrap, environ={})
    topic = f"{app_id}.keys"
    admin = AdminClient(bootstrap_config(bootstrap))
    admin.create_topics([NewTopic(topic, 7, 1)])[topic].result(30)
    producer = Producer(producer_config(settings))
    landed: dict[bytes, int] = {}

    def record(err: object, msg: object) -> None:
        assert err is None
        landed[msg.key()] = msg.partition()  # type: ignore[attr-defined]

    keys = [f"account-{i}".encode() for i in range(3000)] + ["ünï-çødé".encode(), b"x"]
    for key in keys:
        producer.produce(topic, b"", key, on_delivery=record)
        producer.poll(0)
    producer.flush(30)
    assert len(landed) == len(keys)
    assert all(landed[k] == partition_for(k, 7) for k in keys)
    assert len(set(landed.values())) == 7
