"""Read a committed topic back in full: the audit trail, and the fold that checks the actors.

Reads with ``read_committed`` from the beginning of every partition to its end (partition
EOF), so what it returns is exactly what a downstream consumer would ever see.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from actors.kafka import consumer_config
from actors.scan import scan_partition
from topology.codec.aggregate import Codec
from topology.envelopes import EventEnvelope
from topology.moves import record_kind
from topology.names import Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = [
    "AuditedEvent",
    "fold_events",
    "fold_in_sequence",
    "read_events",
    "read_named_topic",
    "read_topic",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditedEvent:
    partition: int
    offset: int
    envelope: EventEnvelope
    event: Any
    headers: list[tuple[str, bytes]]


def read_topic(
    settings: Settings, kind: TopicKind, partitions: list[int] | None = None
) -> Iterator[Any]:
    """Every committed record of one of the application's topics, partition by partition."""
    topic = TopicLayout.of(settings).name(kind)
    return read_named_topic(settings, topic, partitions)


def read_named_topic(
    settings: Settings, topic: str, partitions: list[int] | None = None
) -> Iterator[Any]:
    """Every committed record of ``topic`` (with the application's partition count)."""
    consumer = Consumer(
        consumer_config(
            settings,
            group_id=Names.of(settings).group("audit", unique=True),
            **{"enable.partition.eof": True},
        )
    )
    try:
        for p in partitions if partitions is not None else range(settings.partitions):
            yield from scan_partition(consumer, TopicPartition(topic, p))
    finally:
        consumer.close()


def read_events(
    settings: Settings, aggregate: AnyAggregate, partitions: list[int] | None = None
) -> Iterator[AuditedEvent]:
    """The committed events, decoded and upcast, in log order per partition; a
    repartition's markers (`topology.moves`) are not events and are skipped."""
    codec = Codec(aggregate)
    for msg in read_topic(settings, TopicKind.EVENTS, partitions):
        headers = msg.headers() or []
        if record_kind(headers) is not None:
            continue
        envelope, event = codec.events.decode(msg.value())
        yield AuditedEvent(msg.partition(), msg.offset(), envelope, event, headers)


def fold_events(settings: Settings, aggregate: AnyAggregate) -> dict[str, Any]:
    """Every aggregate's state as the fold of its committed events with ``evolve``, in
    sequence order (`fold_in_sequence`)."""
    return fold_in_sequence(
        aggregate,
        (
            (e.envelope.aggregate_id, e.envelope.sequence, e.event)
            for e in read_events(settings, aggregate)
        ),
    )


def fold_in_sequence(
    aggregate: AnyAggregate, events: Iterable[tuple[str, int, Any]]
) -> dict[str, Any]:
    """Fold (aggregate id, sequence, event) in each aggregate's sequence order. After a
    repartition an account's events lie on more than one partition and a later partition's
    may be read first: those wait until the events before them are folded. Raises
    ValueError when an aggregate's sequences do not run 1, 2, ... without a gap."""
    states: dict[str, Any] = {}
    versions: dict[str, int] = {}
    pending: dict[str, dict[int, Any]] = {}
    for aggregate_id, sequence, event in events:
        waiting = pending.setdefault(aggregate_id, {})
        waiting[sequence] = event
        version = versions.get(aggregate_id, 0)
        while (ready := waiting.pop(version + 1, None)) is not None:
            states[aggregate_id] = aggregate.evolve(states.get(aggregate_id), ready)
            version += 1
        versions[aggregate_id] = version
        if not waiting:
            del pending[aggregate_id]
    if pending:
        gaps = ", ".join(f"{a!r} after {versions.get(a, 0)}" for a in sorted(pending)[:5])
        raise ValueError(f"events missing: sequences do not follow for {gaps}")
    return states
