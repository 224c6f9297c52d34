"""Partition actor names, and a minimal unsupervised launcher.

The service is deployed through the coordinator (``actors.coordinator``), which
supervises, places and rebuilds; ``deploy``/``undeploy`` remain for tests and embedding that want
bare
partition actors without supervision. The names are the same either way, so that clients
find the owner of a partition by name.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from actors.admin import ensure_topics
from actors.history import deploy_history, stop_history
from actors.partition import PartitionWorker
from actors.supervisor import reserved
from topology.names import NAMESPACE, Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicLayout

__all__ = ["NAMESPACE", "deploy", "partition_actor", "undeploy"]

log = logging.getLogger(__name__)


def partition_actor(app_id: str, partition: int) -> Any:
    """The live actor that owns ``partition`` (raises ValueError when there is none)."""
    return ray.get_actor(Names(app_id).partition_actor(partition), namespace=NAMESPACE)


def deploy(
    settings: Settings, aggregate: AnyAggregate, *, detached: bool = True, timeout: float = 120.0
) -> list[Any]:
    """Create the topics and start (or find) one actor per partition; wait until all run.

    Actors use no CPU reservation (they block on Kafka I/O) but reserve the partition
    resource and memory (``reserved``), and restart without limit: a
    restart re-runs the constructor, which fences the predecessor and restores.
    """
    ensure_topics(settings, TopicLayout.of(settings))
    remote: Any = ray.remote(PartitionWorker)
    handles = [
        remote.options(
            name=Names.of(settings).partition_actor(p),
            namespace=NAMESPACE,
            lifetime="detached" if detached else None,
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=-1,
            num_cpus=0,
            **reserved(settings),
        ).remote(settings, p, aggregate)
        for p in range(settings.partitions)
    ]
    statuses = ray.get([h.ready.remote() for h in handles], timeout=timeout)
    deploy_history(settings, aggregate)
    log.info("deployed %s: %s", settings.app_id, statuses)
    return handles


def undeploy(settings: Settings) -> None:
    """Stop and remove every partition actor (and history actor) of the application."""
    stop_history(settings.app_id)
    for p in range(settings.partitions):
        try:
            handle = partition_actor(settings.app_id, p)
        except ValueError:
            continue
        try:
            ray.get(handle.stop.remote(), timeout=30)
        except Exception:  # already dead or stuck: killing it is what we want anyway
            log.warning("partition %d did not stop cleanly; killing it", p)
        ray.kill(handle, no_restart=True)
