"""Create the application's topics idempotently, and refuse to reuse a wrong one."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from actors.kafka import admin_config, bootstrap_config
from topology.settings import Settings
from topology.topics import TopicLayout, TopicSpec, min_insync_replicas, mismatches

__all__ = ["TopicMismatchError", "ensure_specs", "ensure_topics"]

log = logging.getLogger(__name__)

_BROKER_DEFAULT = -1


class TopicMismatchError(RuntimeError):
    """An existing topic does not have the layout this application needs."""


def ensure_topics(kafka: Settings | str, layout: TopicLayout) -> None:
    """Create every data topic of ``layout`` and its control topic that is missing; check
    those that exist. Raises ``TopicMismatchError`` naming every problem."""
    ensure_specs(kafka, [*layout.specs(), layout.control_spec()])


def ensure_specs(kafka: Settings | str, specs: list[TopicSpec]) -> None:
    """Create every topic of ``specs`` that is missing; check those that exist.

    ``kafka`` is the application's settings (connection properties, replication factor and
    min ISR), or a bare bootstrap address (plain text, the broker's default replication).
    Created topics get ``min.insync.replicas`` explicitly; an existing topic whose partition
    count, replication factor, min ISR, cleanup policy or retention differs is reported:
    raises ``TopicMismatchError`` naming every problem.
    """
    config: dict[str, Any]
    if isinstance(kafka, Settings):
        config = admin_config(kafka)
        wanted, min_isr = kafka.replication_factor, kafka.min_insync_replicas
    else:
        config, wanted, min_isr = bootstrap_config(kafka), _BROKER_DEFAULT, 0
    admin = AdminClient(config)
    cluster = admin.list_topics(timeout=30)
    metadata = cluster.topics
    replication = wanted if wanted != _BROKER_DEFAULT else _default_replication(admin, cluster)
    isr = str(min_insync_replicas(replication, min_isr))
    specs = [dataclasses.replace(s, config={**s.config, "min.insync.replicas": isr}) for s in specs]
    existing = {s.name for s in specs if s.name in metadata}
    new = [
        NewTopic(s.name, s.partitions, wanted, config=dict(s.config))
        for s in specs
        if s.name not in existing
    ]
    if new:
        for name, future in admin.create_topics(new, operation_timeout=30).items():
            try:
                future.result(timeout=60)
                log.info("created topic %s (replication %d, min ISR %s)", name, replication, isr)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                existing.add(name)  # created meanwhile (or not yet in our metadata): check it
        metadata = _visible(admin, {s.name for s in specs})
    checked = [s for s in specs if s.name in existing]
    if not checked:
        return
    resources = [ConfigResource(ResourceType.TOPIC, s.name) for s in checked]
    configs = admin.describe_configs(resources)
    problems: list[str] = []
    for spec, resource in zip(checked, resources, strict=True):
        entries = configs[resource].result(timeout=30)
        actual = {k: v.value for k, v in entries.items() if v.value is not None}
        partitions = metadata[spec.name].partitions
        replicas = len(next(iter(partitions.values())).replicas) if partitions else None
        problems += mismatches(spec, len(partitions), actual, replicas, replication)
    if problems:
        raise TopicMismatchError("; ".join(problems))


def _visible(admin: AdminClient, names: set[str], timeout: float = 30.0) -> dict[str, Any]:
    """The topics' metadata once the broker shows all of them (a created topic reaches the
    broker's metadata a little after the controller accepted it)."""
    deadline = time.monotonic() + timeout
    while True:
        topics: dict[str, Any] = admin.list_topics(timeout=timeout).topics
        shown = {n for n in names if n in topics and topics[n].error is None}
        if shown == names or time.monotonic() > deadline:
            return topics
        time.sleep(0.1)


def _default_replication(admin: AdminClient, cluster: Any) -> int:
    """The broker's ``default.replication.factor`` (what replication -1 gives a new topic)."""
    broker = ConfigResource(ResourceType.BROKER, str(cluster.controller_id))
    if cluster.controller_id < 0:
        broker = ConfigResource(ResourceType.BROKER, str(next(iter(cluster.brokers))))
    entries = admin.describe_configs([broker])[broker].result(timeout=30)
    entry = entries.get("default.replication.factor")
    return int(entry.value) if entry is not None and entry.value is not None else 1
