"""A partition's offsets, asked again while Kafka is still settling (a topic created a moment
ago has no leader yet; a broker that just started is still loading its coordinators)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from actors.kafka import retrying

__all__ = ["watermarks"]


def watermarks(consumer: Any, partition: TopicPartition, timeout: float = 30.0) -> tuple[int, int]:
    """(low, high) of ``partition``; asked again while Kafka calls its error retriable, for
    about ``timeout`` seconds. Raises KafkaException when it does not clear."""
    where = f"watermarks of {partition.topic}[{partition.partition}]"
    low, high = retrying(
        where,
        consumer.get_watermark_offsets,
        partition,
        max(1.0, timeout),
        attempts=max(2, int(timeout / 0.5)),
    )
    return int(low), int(high)
