"""A partition's offsets, asked again while Kafka is still settling (a topic created a moment
ago has no leader yet; a broker that just started is still loading its coordinators; a client
whose metadata was fetched while the broker restarted holds the topic without partitions).

The caller names a partition that exists: "unknown partition" is therefore a stale view, not
an answer. librdkafka does not refresh that view on its own for minutes
(``topic.metadata.refresh.interval.ms``), so each such miss asks the broker for the topic's
metadata before the next try.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from actors.kafka import RetriableError, classify

__all__ = ["watermarks"]

log = logging.getLogger(__name__)

_STALE_VIEW = frozenset({KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART})


def watermarks(consumer: Any, partition: TopicPartition, timeout: float = 30.0) -> tuple[int, int]:
    """(low, high) of ``partition``; asked again, for about ``timeout`` seconds, while Kafka
    calls its error retriable or the client's view lacks the partition (its metadata is then
    fetched again). Raises the last KafkaException when it does not clear."""
    where = f"watermarks of {partition.topic}[{partition.partition}]"
    deadline = time.monotonic() + max(1.0, timeout)
    attempt = 0
    while True:
        attempt += 1
        failure: KafkaException | None = None
        try:
            low, high = consumer.get_watermark_offsets(partition, max(1.0, timeout))
            return int(low), int(high)
        except KafkaException as e:
            failure = e
        code = failure.args[0].code() if isinstance(failure.args[0], KafkaError) else None
        stale = code in _STALE_VIEW
        if time.monotonic() >= deadline or not (
            stale or isinstance(classify(failure, during=where), RetriableError)
        ):
            raise failure
        log.info("%s: %s; retrying", where, failure)
        if stale:
            _refresh(consumer, partition.topic)
        time.sleep(min(0.05 * attempt, 0.5))


def _refresh(consumer: Any, topic: str) -> None:
    """Fetch ``topic``'s metadata (which updates the client's view); a failure is left to
    the next try."""
    try:
        consumer.list_topics(topic, timeout=2.0)
    except KafkaException as e:
        log.info("metadata of %s: %s", topic, e)
