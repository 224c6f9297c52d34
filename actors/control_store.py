"""The desired state on Kafka: read the compacted control topic, write records to it.

Reads are ``read_committed`` from the beginning to the end (partition EOF), so a restarted
coordinator, a new Ray cluster or a restarting partition actor all see the same state.
Writes go through a transactional producer (``{app}-coordinator``): a coordinator that
starts fences any earlier one still writing, and each write is committed before it returns.
"""

from __future__ import annotations

import logging
import uuid

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from actors.kafka import consumer_config, producer_config
from actors.scan import scan_partition
from topology.control import (
    ControlDecodeError,
    ControlRecord,
    DesiredState,
    PartitionRecord,
    decode_control,
    encode_control,
)
from topology.settings import Settings
from topology.topics import TopicLayout

__all__ = ["ControlWriter", "read_desired", "read_partition_record"]

log = logging.getLogger(__name__)


def read_desired(settings: Settings, timeout: float = 30.0) -> DesiredState:
    """The desired state as committed to the control topic (empty if it does not exist)."""
    topic = TopicLayout.of(settings).control
    consumer = Consumer(
        consumer_config(
            settings,
            group_id=f"{settings.app_id}-control-{uuid.uuid4().hex[:8]}",
            **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
        )
    )
    desired = DesiredState()
    try:
        for msg in scan_partition(consumer, TopicPartition(topic, 0), batch=1000):
            value = msg.value()
            if value is None:
                continue
            try:
                desired.apply(decode_control(value))
            except ControlDecodeError as e:
                log.warning("%s offset %d: %s", topic, msg.offset(), e)
    except KafkaException as e:
        if e.args[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            return desired  # never deployed: nothing desired yet
        raise
    finally:
        consumer.close()
    return desired


def read_partition_record(settings: Settings, partition: int) -> PartitionRecord:
    """Partition ``partition``'s desired record (the default one if there is none)."""
    return read_desired(settings).partition(partition)


class ControlWriter:
    """The coordinator's writer of control records. One per coordinator; creating it fences
    the previous coordinator's writer."""

    def __init__(self, settings: Settings) -> None:
        self.topic = TopicLayout.of(settings).control
        self._producer = Producer(
            producer_config(settings, transactional_id=f"{settings.app_id}-coordinator")
        )
        self._producer.init_transactions(30)

    def write(self, *records: ControlRecord) -> None:
        """Commit ``records`` to the control topic, all or none."""
        producer = self._producer
        producer.begin_transaction()
        try:
            for record in records:
                key, value = encode_control(record)
                producer.produce(self.topic, value, key, 0)
            producer.commit_transaction(30)
        except KafkaException:
            try:
                producer.abort_transaction(30)
            except KafkaException:
                log.exception("aborting a control write failed")
            raise
