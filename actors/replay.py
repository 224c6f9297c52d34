"""Read one events partition from an offset to its end and fold it into slots.

The executor half of a replay (the folding rules are
``topology.restore.apply_event_records``): used by the shadow rebuild and by a partition
actor whose snapshots are stale. Reads are
``read_committed``: only events of committed transactions are ever folded.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from actors.kafka import consumer_config
from actors.watermarks import watermarks
from topology.codec.aggregate import Codec
from topology.envelopes import Slot
from topology.names import Names
from topology.restore import apply_event_records
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["EventTail", "replay_partition"]

log = logging.getLogger(__name__)


class EventTail:
    """A read_committed reader of ``events[partition]`` from ``start``. ``position`` is the
    next offset to read; once ``at_end`` it is the partition's end (transaction markers
    included), so ``end() - position`` is what is left to replay."""

    def __init__(self, settings: Settings, partition: int, start: int) -> None:
        layout = TopicLayout.of(settings)
        self.partition = TopicPartition(layout.name(TopicKind.EVENTS), partition)
        self._consumer = Consumer(
            consumer_config(
                settings,
                group_id=Names.of(settings).group("replay", unique=True),
                **{
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 5,  # the end is noticed quickly
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "max.partition.fetch.bytes": 16 * 1024 * 1024,
                },
            )
        )
        self._consumer.assign([TopicPartition(self.partition.topic, partition, start)])
        # Offsets are asked on a consumer of their own: on the fetching one, the request
        # would wait behind the long-poll fetch sharing the broker connection.
        self._offsets = Consumer(
            consumer_config(settings, group_id=Names.of(settings).group("replay-offsets"))
        )
        self.position = start
        self.at_end = False

    def end(self, timeout: float = 10.0) -> int:
        """The partition's end offset now (the last stable offset for read_committed)."""
        return watermarks(self._offsets, self.partition, timeout)[1]

    def read(self, limit: int = 10_000, timeout: float = 0.1) -> list[Any]:
        """The next records (at most ``limit``); sets ``at_end`` on reaching the end."""
        out = []
        for msg in self._consumer.consume(limit, timeout=timeout):
            error = msg.error()
            if error is None:
                out.append(msg)
                self.position = (msg.offset() or 0) + 1
                self.at_end = False
            elif error.code() == KafkaError._PARTITION_EOF:
                self.at_end = True
                [where] = self._consumer.position([self.partition])
                if where.offset >= 0:
                    self.position = max(self.position, where.offset)
            else:
                raise KafkaException(error)
        return out

    def close(self) -> None:
        self._consumer.close()
        self._offsets.close()


def fold(
    codec: Codec,
    states: dict[str, Slot],
    records: list[Any],
    changed: set[str] | None = None,
) -> int:
    """Fold event records into ``states``; returns how many were applied (already reflected
    ones are skipped) and adds the changed aggregate ids to ``changed`` (an account that a
    departure marker dropped too: it is absent from ``states``)."""
    return apply_event_records(
        codec, states, ((m.key(), m.value(), m.headers()) for m in records), changed
    )


def replay_partition(
    settings: Settings, codec: Codec, partition: int, states: dict[str, Slot]
) -> tuple[int, int]:
    """Fold ``events[partition]`` from offset 0 to its current end into ``states``.
    Returns (events applied, the events offset the states now reflect)."""
    tail = EventTail(settings, partition, 0)
    try:
        end = tail.end()
        applied = 0
        while tail.position < end:
            applied += fold(codec, states, tail.read())
        return applied, tail.position
    finally:
        tail.close()
