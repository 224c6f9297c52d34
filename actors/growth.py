"""Grow an application's topics in place: the first step of a repartition
(`docs/design-repartition.md`, "The topics grow first").

Every per-partition topic (commands, events, snapshots and each `snapshots.g{n}`, state,
dlq, internal) gets M partitions and replies M × reply_lanes, with
`AdminClient.create_partitions`; Kafka appends partitions at the end, so no record moves and
every existing partition keeps its number. Idempotent: a topic that already has its count is
left alone, and a growth a concurrent call already made counts as done. The control topic
keeps its one partition. Nothing here records the new count: the coordinator does, after
this (`Coordinator.adopt_partitions`), once every topic has it.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions

from actors.kafka import admin_config
from topology.settings import Settings
from topology.topics import TopicLayout, growth

__all__ = ["grow_topics", "short_of", "topic_partitions"]

log = logging.getLogger(__name__)


def topic_partitions(
    admin: AdminClient, layout: TopicLayout, timeout: float = 30.0
) -> dict[str, int]:
    """The partition count of every topic of ``layout``'s application (by its name prefix)."""
    topics = admin.list_topics(timeout=timeout).topics
    return {
        name: len(meta.partitions)
        for name, meta in topics.items()
        if name.startswith(layout.prefix) and meta.error is None
    }


def short_of(settings: Settings) -> dict[str, int]:
    """The per-partition topics of ``settings``' application that have fewer partitions than
    its count (``settings.partitions``) needs, with the count they need (empty: none).
    Raises ValueError as ``topology.topics.growth`` does."""
    admin = AdminClient(admin_config(settings))
    layout = TopicLayout.of(settings)
    return growth(layout, topic_partitions(admin, layout), settings.partitions)


def grow_topics(settings: Settings, partitions: int, *, timeout: float = 60.0) -> dict[str, int]:
    """Grow every per-partition topic of ``settings``' application to ``partitions`` (replies
    to ``partitions × reply_lanes``) and wait until the broker shows them; returns each topic
    grown → its count before (empty: all had it already). Raises ValueError when the
    application is not deployed or a topic has more partitions than that (a topic never
    shrinks), RuntimeError when the broker does not show the growth within ``timeout``."""
    admin = AdminClient(admin_config(settings))
    layout = TopicLayout.of(settings)
    before = topic_partitions(admin, layout)
    wanted = growth(layout, before, partitions)
    if wanted:
        asked = [NewPartitions(topic, count) for topic, count in wanted.items()]
        for topic, future in admin.create_partitions(asked, operation_timeout=30).items():
            try:
                future.result(timeout=timeout)
            except KafkaException as e:
                # "already has" it: a concurrent growth made it; checked below like any other
                if e.args[0].code() != KafkaError.INVALID_PARTITIONS:
                    raise
                log.info("%s: %s", topic, e.args[0].str())
    deadline = time.monotonic() + timeout
    while (left := growth(layout, topic_partitions(admin, layout), partitions)) != {}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker does not show the growth of {sorted(left)}")
        time.sleep(0.1)
    grown = {topic: before[topic] for topic in wanted}
    if grown:
        log.warning("%s: grew %s to %d partitions", layout.app_id, sorted(grown), partitions)
    return grown
