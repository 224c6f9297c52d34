"""Plain Kafka plumbing for the harness: topics, gated copies, read-back, group offsets.

Every producer here uses the Java-compatible partitioner and writes each record to the same
partition number it came from, so each system's copy of the commands topic holds identical
bytes at identical positions.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from actors.kafka import bootstrap_config

__all__ = [
    "GatedCopy",
    "GroupProbe",
    "consumer_config",
    "count_records",
    "create_topics",
    "delete_run",
    "producer_config",
    "read_records",
    "wait_until",
]

log = logging.getLogger(__name__)

_HOLD_MS = 600_000  # a gated copy may stay uncommitted this long (broker max: 15 min)


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """A bulk producer: idempotent, acks=all, lz4, our partitioner, large batches."""
    return {
        **bootstrap_config(bootstrap),
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "log_level": 3,
        **extra,
    }


def consumer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """A manual-assign reader: read_committed, no commits, EOF events on."""
    return {
        **bootstrap_config(bootstrap),
        "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "log_level": 3,
        **extra,
    }


def create_topics(
    bootstrap: str, names: list[str], partitions: int, config: dict[str, str] | None = None
) -> None:
    """Create fresh topics (they must not exist: each run has its own names)."""
    admin = AdminClient(bootstrap_config(bootstrap))
    new = [NewTopic(n, partitions, 1, config=dict(config or {})) for n in names]
    for name, future in admin.create_topics(new, operation_timeout=30).items():
        future.result(timeout=60)
        log.debug("created %s", name)


def delete_run(bootstrap: str, marker: str) -> list[str]:
    """Delete every topic and consumer group whose name contains ``marker`` (this run's id);
    return the topics."""
    admin = AdminClient(bootstrap_config(bootstrap))
    names = [t for t in admin.list_topics(timeout=30).topics if marker in t]
    if names:
        for name, future in admin.delete_topics(names, operation_timeout=60).items():
            try:
                future.result(timeout=60)
            except KafkaException as e:
                log.warning("could not delete topic %s: %s", name, e)
    listed = admin.list_consumer_groups(request_timeout=30).result()
    groups = [g.group_id for g in listed.valid if marker in g.group_id]
    if groups:
        for group, future in admin.delete_consumer_groups(groups, request_timeout=30).items():
            try:
                future.result(timeout=60)
            except KafkaException as e:
                log.warning("could not delete group %s: %s", group, e)
    return names


class GatedCopy:
    """Copy ``source`` into ``target`` partition by partition inside one open transaction.

    Nothing is visible to a read_committed consumer until ``release()`` commits it, so a
    system can start, join its group and settle before its input appears all at once. In a
    fresh target partition the records keep their offsets 0..n-1; the commit marker is at n.
    """

    def __init__(self, bootstrap: str, source: str, target: str, partitions: int) -> None:
        self.target = target
        self.counts = [0] * partitions
        self._producer = Producer(
            producer_config(
                bootstrap,
                **{
                    "transactional.id": f"bench-copy-{target}",
                    "transaction.timeout.ms": _HOLD_MS,
                },
            )
        )
        self._producer.init_transactions(30)
        self._producer.begin_transaction()
        self._started = time.monotonic()
        self._released = False
        produce = self._producer.produce
        for msg in read_records(bootstrap, source, range(partitions)):
            p = msg.partition()
            while True:
                try:
                    produce(target, msg.value(), msg.key(), p, headers=msg.headers())
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self.counts[p] += 1
        if self._producer.flush(120):
            raise RuntimeError(f"the copy into {target} was not all delivered")

    @property
    def total(self) -> int:
        return sum(self.counts)

    def release(self) -> float:
        """Commit the copy; returns the wall-clock time it became visible."""
        if time.monotonic() - self._started > _HOLD_MS / 1000 * 0.9:
            log.warning("the gated copy of %s was held close to its timeout", self.target)
        self._producer.commit_transaction(60)
        self._released = True
        return time.time()

    def abandon(self) -> None:
        """Abort the copy if it was never released (a system failed to start)."""
        if not self._released:
            self._released = True
            try:
                self._producer.abort_transaction(30)
            except KafkaException as e:
                log.warning("could not abort the copy into %s: %s", self.target, e)


def read_records(bootstrap: str, topic: str, partitions: range | list[int]) -> Iterator[Any]:
    """Every committed record of ``partitions`` of ``topic``, to each partition's end."""
    consumer = Consumer(consumer_config(bootstrap))
    try:
        pending = set(partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        while pending:
            for msg in consumer.consume(10_000, timeout=0.5):
                error = msg.error()
                if error is None:
                    yield msg
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise KafkaException(error)
    finally:
        consumer.close()


def count_records(bootstrap: str, topic: str, partitions: int) -> int:
    """How many committed records ``topic`` holds."""
    return sum(1 for _ in read_records(bootstrap, topic, range(partitions)))


class GroupProbe:
    """Reads one consumer group's committed offsets and membership (one admin client)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.group = group
        self._admin = AdminClient(bootstrap_config(bootstrap))

    def committed(self, topic: str, partitions: int) -> list[int]:
        """The committed offset per partition of ``topic`` (-1: none yet)."""
        request = ConsumerGroupTopicPartitions(
            self.group, [TopicPartition(topic, p) for p in range(partitions)]
        )
        futures = self._admin.list_consumer_group_offsets([request])
        result = futures[self.group].result(timeout=30)
        offsets = [-1] * partitions
        for tp in result.topic_partitions:
            if tp.error is None and tp.offset >= 0:
                offsets[tp.partition] = tp.offset
        return offsets

    def assignment(self, topic: str) -> tuple[str, int, set[int]]:
        """The group's state name, its member count, and the partitions of ``topic`` that
        its members hold."""
        futures = self._admin.describe_consumer_groups([self.group])
        description = futures[self.group].result(timeout=30)
        assigned: set[int] = set()
        for member in description.members:
            if member.assignment is not None:
                assigned.update(
                    tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic
                )
        state = str(description.state).rsplit(".", 1)[-1]
        return state, len(description.members), assigned


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str
) -> None:
    """Poll ``condition`` until it holds; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
