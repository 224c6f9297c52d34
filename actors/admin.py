"""Create the application's topics idempotently, and refuse to reuse a wrong one."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from topology.topics import TopicLayout, TopicSpec, mismatches

__all__ = ["TopicMismatchError", "ensure_specs", "ensure_topics"]

log = logging.getLogger(__name__)


class TopicMismatchError(RuntimeError):
    """An existing topic does not have the layout this application needs."""


def ensure_topics(bootstrap: str, layout: TopicLayout, replication: int = 1) -> None:
    """Create every data topic of ``layout`` and its control topic that is missing; check
    those that exist. Raises ``TopicMismatchError`` naming every problem."""
    ensure_specs(bootstrap, [*layout.specs(), layout.control_spec()], replication)


def ensure_specs(bootstrap: str, specs: list[TopicSpec], replication: int = 1) -> None:
    """Create every topic of ``specs`` that is missing; check those that exist.

    Raises ``TopicMismatchError`` naming every problem (partition count, cleanup policy).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=30).topics
    existing = {s.name for s in specs if s.name in metadata}
    new = [
        NewTopic(s.name, s.partitions, replication, config=dict(s.config))
        for s in specs
        if s.name not in existing
    ]
    if new:
        for name, future in admin.create_topics(new, operation_timeout=30).items():
            try:
                future.result(timeout=60)
                log.info("created topic %s", name)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    checked = [s for s in specs if s.name in existing]
    if not checked:
        return
    resources = [ConfigResource(ResourceType.TOPIC, s.name) for s in checked]
    configs = admin.describe_configs(resources)
    problems: list[str] = []
    for spec, resource in zip(checked, resources, strict=True):
        entries = configs[resource].result(timeout=30)
        actual = {k: v.value for k, v in entries.items() if v.value is not None}
        problems += mismatches(spec, len(metadata[spec.name].partitions), actual)
    if problems:
        raise TopicMismatchError("; ".join(problems))
