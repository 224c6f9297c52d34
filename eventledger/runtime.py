"""Find or start what the service runs on: a Kafka cluster and a Ray cluster."""

from __future__ import annotations

import logging
import os

from eventledger.broker import Broker
from topology.settings import configured_bootstrap

__all__ = ["LOCAL_RAY_SYSTEM_CONFIG", "ensure_broker", "ensure_ray"]

# Ray starts workers at niceness 15 so that drivers stay responsive. Partition actors are
# the service's latency path: on a shared machine (the broker beside them) a niced actor
# waits behind every other process for each transaction round trip, so run them at 0.
LOCAL_RAY_SYSTEM_CONFIG = {"worker_niceness": 0}

log = logging.getLogger(__name__)


def ensure_broker() -> str:
    """``KAFKA_BOOTSTRAP_SERVERS`` (or the Kafka properties' ``bootstrap.servers``) if set,
    else the local broker (started if needed)."""
    return configured_bootstrap() or Broker().start()


def ensure_ray(namespace: str) -> None:
    """Connect to ``RAY_ADDRESS`` if set, else start a local Ray without a dashboard."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace=namespace, log_to_driver=False)
    else:
        ray.init(
            address="local",  # a new local instance, even if another one runs here
            namespace=namespace,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _system_config=LOCAL_RAY_SYSTEM_CONFIG,
        )
