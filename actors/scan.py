"""Read one partition from its beginning to its end: the loop that restore, audit, the
control store and the shadow rebuild share.

The consumer must be created with ``enable.partition.eof`` so that the end is noticed: a
read_committed reader never sees the transaction markers that close a partition, so an
offset comparison with the high watermark could wait forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from actors.watermarks import watermarks

__all__ = ["scan_partition"]


def scan_partition(
    consumer: Consumer, partition: TopicPartition, *, batch: int = 10_000, wait: float = 0.05
) -> Iterator[Any]:
    """Every record of ``partition`` the consumer may see, in offset order, from its
    beginning (or from ``partition.offset`` when that is set, >= 0), then stop at the
    partition's end as it was when the scan reached it. An empty range yields nothing
    without being assigned. Raises KafkaException for any consumer error but the end."""
    low, high = watermarks(consumer, partition)
    start = partition.offset if partition.offset >= 0 else OFFSET_BEGINNING
    if high <= max(low, start):
        return
    consumer.assign([TopicPartition(partition.topic, partition.partition, start)])
    while True:
        for msg in consumer.consume(batch, timeout=wait):
            error = msg.error()
            if error is None:
                yield msg
            elif error.code() == KafkaError._PARTITION_EOF:
                if (msg.topic(), msg.partition()) == (partition.topic, partition.partition):
                    return  # nothing of it follows its end
                # a late end of a partition this consumer scanned before: not ours
            else:
                raise KafkaException(error)
