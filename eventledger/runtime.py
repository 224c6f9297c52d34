"""Find or start what the service runs on: a Kafka cluster and a Ray cluster."""

from __future__ import annotations

import logging
import os
import socket

from eventledger.broker import Broker
from topology.resources import LOCAL_SLOTS
from topology.settings import ENVIRONMENT, configured_bootstrap

__all__ = [
    "LOCAL_RAY_SYSTEM_CONFIG",
    "ensure_broker",
    "ensure_ray",
    "free_port",
    "local_resources",
    "quiet_ray",
]

# Ray starts workers at niceness 15 so that drivers stay responsive. Partition actors are
# the service's latency path: on a shared machine (the broker beside them) a niced actor
# waits behind every other process for each transaction round trip, so run them at 0.
LOCAL_RAY_SYSTEM_CONFIG = {"worker_niceness": 0}

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick; free until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def local_resources() -> dict[str, float]:
    """What a single-node Ray started by eventledger declares: ``LOCAL_SLOTS`` of the
    partition resource (``EVENTLEDGER_PARTITION_RESOURCE``, default ``eventledger_partition``),
    so that partition actors, which reserve one each, can run on it."""
    from topology.resources import DEFAULT_RESOURCE

    name = os.environ.get(ENVIRONMENT["partition_resource"], "").strip() or DEFAULT_RESOURCE
    return {name: float(LOCAL_SLOTS)}


def ensure_broker() -> str:
    """``KAFKA_BOOTSTRAP_SERVERS`` (or the Kafka properties' ``bootstrap.servers``) if set,
    else the local broker (started if needed)."""
    return configured_bootstrap() or Broker().start()


def quiet_ray() -> int:
    """Ray's own log lines (its token-authentication warning among them) only when this
    process logs at INFO (the CLI's -v): the level to give ``ray.init``, also set on Ray's
    loggers here (Serve's does not propagate)."""
    level = logging.INFO if logging.getLogger().isEnabledFor(logging.INFO) else logging.ERROR
    for name in ("ray", "ray.serve"):
        logging.getLogger(name).setLevel(level)
    return level


def ensure_ray(namespace: str) -> None:
    """Connect to ``RAY_ADDRESS`` if set, else start a local Ray without a dashboard that
    offers the partition resource (``local_resources``)."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    level = quiet_ray()
    if address:
        ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level=level)
    else:
        ray.init(
            address="local",  # a new local instance, even if another one runs here
            namespace=namespace,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            resources=local_resources(),
            _system_config=LOCAL_RAY_SYSTEM_CONFIG,
        )
