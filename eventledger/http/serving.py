"""The HTTP API as a Ray Serve application: deployed, found ready, removed.

One application per service (``Names.http_app``), at route prefix ``/`` of the cluster's
Serve proxy (so one API per Ray cluster and port). Each replica holds its own
``BankClient`` (its own reply consumer) and the token table's hashes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from ray import serve

from actors.kafka import admin_config
from eventledger.bank import BankClient
from eventledger.http.app import Replica, api, bind_replica
from eventledger.http.auth import TokenTable
from topology.names import Names
from topology.settings import Settings

__all__ = ["LedgerAPI", "deploy_http", "stop_http"]

log = logging.getLogger(__name__)

INSECURE_WARNING = (
    "!!! INSECURE: the eventledger HTTP API runs WITHOUT AUTHENTICATION (--insecure-dev): "
    "anyone who reaches it can move money. For a local demo only. !!!"
)


class _Readiness:
    """Every partition runs (as the coordinator saw it), and Kafka and Ray answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin = AdminClient({**admin_config(settings), "log_level": 0})

    def __call__(self) -> list[str]:
        import ray

        from actors.deployment import find_coordinator
        from eventledger.report import not_running

        problems: list[str] = []
        try:
            self._admin.list_topics(timeout=3)
        except KafkaException as e:
            problems.append(f"Kafka does not answer: {e.args[0].str()}")
        try:
            coordinator = find_coordinator(self.settings.app_id)
            if coordinator is None:
                problems.append("the service is not deployed")
            else:
                stopped = not_running(ray.get(coordinator.status.remote(), timeout=5))
                if stopped:
                    problems.append(f"partitions not running: {stopped}")
        except Exception as e:  # Ray does not answer in time
            problems.append(f"Ray does not answer: {type(e).__name__}")
        return problems


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress(api)
class LedgerAPI:
    """A replica: the routes of ``eventledger.http.app`` over this replica's client."""

    def __init__(self, settings: Settings, tokens: TokenTable, command_timeout: float) -> None:
        if tokens.insecure:
            for _ in range(3):
                log.warning(INSECURE_WARNING)
        self._client = BankClient(settings, timeout=command_timeout)
        bind_replica(Replica(self._client, tokens, command_timeout, _Readiness(settings)))

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


def deploy_http(
    settings: Settings,
    tokens: TokenTable,
    *,
    port: int = 8000,
    host: str = "127.0.0.1",
    replicas: int = 1,
    command_timeout: float = 10.0,
    timeout: float = 120.0,
) -> str:
    """Deploy (or update) the API of ``settings`` and return its URL once ``/healthz``
    answers through the Serve proxy. Raises TimeoutError."""
    if tokens.insecure:
        log.warning(INSECURE_WARNING)
    serve.start(http_options={"host": host, "port": port})
    deployment: Any = LedgerAPI
    app = deployment.options(num_replicas=replicas).bind(settings, tokens, command_timeout)
    serve.run(app, name=Names.of(settings).http_app, route_prefix="/")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the HTTP API does not answer at {url} after {timeout:.0f}s")
        time.sleep(0.2)


def stop_http(app_id: str) -> bool:
    """Remove the API of ``app_id``; False when there was none (or no Serve)."""
    name = Names(app_id).http_app
    try:
        if name not in serve.status().applications:
            return False
        serve.delete(name)
    except Exception as e:  # no Serve on this cluster
        log.info("no HTTP API to stop: %s", e)
        return False
    return True
