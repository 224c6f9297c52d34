"""The Kafka semantics the design relies on, checked against the real broker."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from actors.kafka import bootstrap_config


def _create(bootstrap: str, name: str, partitions: int = 1, **config: str) -> None:
    admin = AdminClient(bootstrap_config(bootstrap))
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config)])
    futures[name].result(timeout=30)


def _producer(bootstrap: str, txn_id: str) -> Producer:
    p = Producer(
        {
            **bootstrap_config(bootstrap),
            "transactional.id": txn_id,
            "partitioner": "murmur2_random",
            "linger.ms": 1,
        }
    )
    p.init_transactions(30)
    return p


def _consumer(bootstrap: str, group: str | None = None) -> Consumer:
    return Consumer(
        {
            **bootstrap_config(bootstrap),
            "group.id": group or f"g-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _collect(consumer: Consumer, topic: str, expect: int, settle: float = 1.0) -> list[bytes]:
    """Read ``topic`` from offset 0 until ``expect`` records arrive (or 20 s), then ``settle``
    seconds more so that a record that should not be there has the chance to show up."""
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[bytes] = []
    deadline = time.monotonic() + 20.0
    while len(seen) < expect and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            seen.append(msg.value())
    settle_until = time.monotonic() + settle
    while time.monotonic() < settle_until:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            seen.append(msg.value())
    return seen


def test_open_transaction_is_invisible_until_commit(bootstrap: str, app_id: str) -> None:
    topic = f"{app_id}.t"
    _create(bootstrap, topic)
    producer = _producer(bootstrap, f"{app_id}-0")
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"pending")
    producer.flush(10)
    consumer = _consumer(bootstrap)
    assert _collect(consumer, topic, expect=0, settle=2.0) == []
    producer.commit_transaction(30)
    assert _collect(consumer, topic, expect=1) == [b"pending"]
    consumer.close()


def test_aborted_transaction_is_never_visible(bootstrap: str, app_id: str) -> None:
    topic = f"{app_id}.t"
    _create(bootstrap, topic)
    producer = _producer(bootstrap, f"{app_id}-0")
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.flush(10)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)
    consumer = _consumer(bootstrap)
    assert _collect(consumer, topic, expect=1) == [b"committed"]
    consumer.close()


def test_same_transactional_id_fences_the_first_producer(bootstrap: str, app_id: str) -> None:
    topic = f"{app_id}.t"
    _create(bootstrap, topic)
    first = _producer(bootstrap, f"{app_id}-0")
    first.begin_transaction()
    first.produce(topic, value=b"zombie")
    first.flush(10)
    second = _producer(bootstrap, f"{app_id}-0")  # bumps the epoch: the first is fenced
    with pytest.raises(KafkaException) as caught:
        first.produce(topic, value=b"zombie-2")
        first.commit_transaction(30)
    error: KafkaError = caught.value.args[0]
    assert error.fatal() or error.code() == KafkaError._FENCED
    second.begin_transaction()
    second.produce(topic, value=b"successor")
    second.commit_transaction(30)
    consumer = _consumer(bootstrap)
    assert _collect(consumer, topic, expect=1) == [b"successor"]
    consumer.close()


def test_compacted_topic_reports_its_policy(bootstrap: str, app_id: str) -> None:
    topic = f"{app_id}.snapshots"
    _create(bootstrap, topic, 2, **{"cleanup.policy": "compact"})
    admin = AdminClient(bootstrap_config(bootstrap))
    resource = ConfigResource(ResourceType.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["cleanup.policy"].value == "compact"
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    assert len(meta.partitions) == 2
