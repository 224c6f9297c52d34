"""A partition's offsets, asked again while Kafka is still settling (a topic created a moment
ago has no leader yet; a broker that just started is still loading its coordinators)."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from actors.kafka import RetriableError, classify

__all__ = ["watermarks"]

log = logging.getLogger(__name__)


def watermarks(consumer: Any, partition: TopicPartition, timeout: float = 30.0) -> tuple[int, int]:
    """(low, high) of ``partition``; retries what Kafka calls retriable until ``timeout``.
    Raises KafkaException when it is not retriable or does not clear in time."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=max(1.0, timeout))
            return int(low), int(high)
        except KafkaException as e:
            attempt += 1
            if not isinstance(classify(e, during="watermarks"), RetriableError):
                raise
            if time.monotonic() > deadline:
                raise
            log.info("%s[%d]: %s; asking again", partition.topic, partition.partition, e)
            time.sleep(min(0.05 * attempt, 0.5))
