"""The CLI's side of a deployed service: reach Ray and Kafka, deploy, stop, ask, rebuild.

Every failure to reach Ray or Kafka becomes a ``ServiceError`` with a one-line message, which
the CLI prints without a traceback. Ray is ``RAY_ADDRESS`` when set, else the Ray instance
running on this machine (``ray start --head``); ``serve`` starts that head when there is none,
so that the service outlives the CLI call.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from actors.kafka import admin_config
from eventledger.runtime import quiet_ray
from topology.names import NAMESPACE
from topology.settings import Settings

__all__ = [
    "ServiceError",
    "check_kafka",
    "connect_ray",
    "coordinator_or_fail",
    "service_status",
    "start_local_head",
]

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """Ray or Kafka is unreachable, or the service is not there: a one-line explanation."""


def check_kafka(settings: Settings, timeout: float = 10.0) -> None:
    """Raise ServiceError unless the application's Kafka cluster answers a metadata request
    with its connection properties, asking every ``_ASK_SECONDS`` until ``timeout``. A
    refused login (SASL, SSL) says so in one line as soon as librdkafka reports it; the
    message names the bootstrap servers and librdkafka's reason, never a property value."""
    refused: list[KafkaError] = []

    def on_error(error: KafkaError) -> None:
        if error.code() in _AUTH_CODES:
            refused.append(error)

    config: dict[str, Any] = {**admin_config(settings), "log_level": 0, "error_cb": on_error}
    admin = AdminClient(config)
    where = f"Kafka at {settings.bootstrap_servers}"
    deadline = time.monotonic() + timeout
    while True:  # short asks: a refused login is told at once, not at the timeout
        try:
            admin.list_topics(timeout=min(_ASK_SECONDS, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as e:
            admin.poll(0)  # serves the error callbacks queued meanwhile
            if refused:
                raise ServiceError(
                    f"{where} refused the login: {_first_line_of(refused[0].str())}"
                ) from None
            if time.monotonic() >= deadline:
                raise ServiceError(f"cannot reach {where}: {e.args[0].str()}") from None


_ASK_SECONDS = 0.5


_AUTH_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._SSL,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)


def _first_line_of(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"


def _reachable(address: str, timeout: float = 3.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def start_local_head() -> None:
    """``ray start --head`` on this machine (no dashboard), offering the partition resource
    (``local_resources``) and with the system config of every local Ray eventledger starts
    (``LOCAL_RAY_SYSTEM_CONFIG``: the actors at niceness 0, as the benchmarks and tests run
    them); it runs until ``ray stop``."""
    from eventledger.runtime import LOCAL_RAY_SYSTEM_CONFIG, local_resources

    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--resources={json.dumps(local_resources())}",
        f"--system-config={json.dumps(LOCAL_RAY_SYSTEM_CONFIG)}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ServiceError(f"could not start a local Ray head: {last[0]}")


def connect_ray(*, start_local: bool = False) -> str:
    """Connect this process to Ray in namespace ``eventledger``; returns how it connected.

    ``RAY_ADDRESS`` if set (refused at once when nothing listens there), else the head that
    ``ray start --head`` runs on this machine; with ``start_local`` one is started when
    there is none."""
    import ray

    if ray.is_initialized():
        return "connected"
    address = os.environ.get("RAY_ADDRESS", "").strip()
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": quiet_ray()}
    if address and address != "auto":
        if not address.startswith("ray://") and not _reachable(address.removeprefix("http://")):
            raise ServiceError(f"cannot reach the Ray cluster at RAY_ADDRESS={address}")
        try:
            ray.init(address=address, namespace=NAMESPACE, **quiet)
        except Exception as e:
            hint = (
                "" if os.environ.get("RAY_AUTH_MODE") else " (token auth? set RAY_AUTH_MODE=token)"
            )
            raise ServiceError(
                f"cannot connect to Ray at {address}: {_first_line(e)}{hint}"
            ) from None
        return f"Ray cluster at {address}"
    local = _local_head()
    if local is None:
        if not start_local:
            raise ServiceError(
                "no Ray cluster: set RAY_ADDRESS, or start the service with `eventledger serve`"
            )
        start_local_head()
        local = _local_head()
        if local is None:
            raise ServiceError("started a local Ray head, but cannot find its address")
    try:
        # "auto" resolves to that head (Ray's record of the last `ray start`) and, unlike an
        # explicit address, uses the head's authentication token when there is one.
        ray.init(address="auto", namespace=NAMESPACE, **quiet)
    except Exception as e:
        raise ServiceError(
            f"cannot connect to the local Ray at {local}: {_first_line(e)}"
        ) from None
    return f"the local Ray head at {local}"


def _local_head() -> str | None:
    """The address of the head that ``ray start --head`` runs on this machine, if it answers
    (Ray's own record of it; other Ray instances, e.g. a test's, are not considered)."""
    try:
        from ray._private.services import find_bootstrap_address

        address: str | None = find_bootstrap_address(None)
    except Exception:  # the private API moved: behave as if there were none
        return None
    if address and _reachable(address):
        return address
    return None


def coordinator_or_fail(app_id: str) -> Any:
    """The application's coordinator; ServiceError when it is not deployed."""
    from actors.deployment import find_coordinator

    handle = find_coordinator(app_id)
    if handle is None:
        raise ServiceError(
            f"no service {app_id!r} on this Ray cluster (deploy it with `eventledger serve`)"
        )
    return handle


def service_status(app_id: str, timeout: float = 60.0) -> Any:
    """The application's ``ServiceStatus`` as its coordinator last observed it (connects to
    Ray first); ServiceError when Ray or the service is not there."""
    connect_ray()
    import ray

    return ray.get(coordinator_or_fail(app_id).status.remote(), timeout=timeout)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
