"""The HTTP API as a Ray Serve application: deployed, found ready, removed.

One application per service (``Names.http_app``), at route prefix ``/`` of the cluster's
Serve proxy (so one API per Ray cluster and port). Each replica holds its own
``BankClient`` (its own reply consumer) and the token table's hashes, and the API tier's
Kafka properties only (``Settings.for_api``), never the service's own. Bounds (``Limits``): a
replica works on at most ``max_ongoing`` requests and Serve's proxy queues at most
``max_queued`` more (beyond, Serve answers 503 with ``Retry-After``: its own plain-text body,
as the proxy answers before any replica sees the request), so one client's flood cannot grow
memory without end; each token gets at most ``rate_per_token`` requests a second on a
replica (429 with ``Retry-After`` beyond); every request has a deadline
(``eventledger.http.deadlines``).

Serve's own ``request_timeout_s`` is left unset: it answers 408 (which says the client was
slow to send) in plain text, and it is an option of the whole Serve instance, kept from the
first ``serve.start``; the app's deadline answers 504 with a problem body instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from ray import serve
from ray.serve.config import BackpressureConfig

from actors.kafka import admin_config
from eventledger.bank import BankClient
from eventledger.http.app import api
from eventledger.http.auth import TokenTable
from eventledger.http.limits import Limits, RateLimiter
from eventledger.http.replica import Replica, bind_replica
from eventledger.http.routes_health import CachedReadiness
from topology.names import Names
from topology.settings import Settings

__all__ = [
    "LedgerAPI",
    "Tls",
    "deploy_http",
    "stop_http",
]

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


_MISMATCH_AFTER_S = 10.0


@dataclass(frozen=True)
class Tls:
    """The certificate chain and key files the API serves HTTPS with."""

    cert: Path
    key: Path

    def check(self) -> None:
        """ValueError naming a file that cannot be read."""
        for what, path in (("certificate", self.cert), ("key", self.key)):
            if not path.is_file():
                raise ValueError(f"the TLS {what} {path} is not a readable file")


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class LedgerAPI:
    """A replica: the routes of ``eventledger.http.app`` over this replica's client."""

    def __init__(
        self, settings: Settings, tokens: TokenTable, command_timeout: float, limits: Limits
    ) -> None:
        if tokens.insecure:
            for _ in range(3):
                log.warning(INSECURE_WARNING)
        self._client = BankClient(settings, timeout=command_timeout)
        readiness = CachedReadiness(_Readiness(settings))
        readiness()  # the first check starts now, in the background
        self._replica = Replica(
            self._client,
            tokens,
            command_timeout,
            readiness,
            RateLimiter(limits.rate_per_token, limits.burst_per_token),
            limits,
        )
        bind_replica(self._replica)

    def __del__(self) -> None:
        replica = getattr(self, "_replica", None)
        if replica is not None:  # calls not begun never run; running ones end by their timeouts
            replica.executor.shutdown(wait=False, cancel_futures=True)
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
    tls: Tls | None = None,
    limits: Limits | None = None,
) -> str:
    """Deploy (or update) the API of ``settings`` and return its URL once ``/healthz``
    answers through the Serve proxy. ``command_timeout``: how long a command waits for its
    reply (then 504 ``outcome_unknown``); ``limits``: the replica's bounds (``Limits()``).
    Raises TimeoutError, and ValueError when a Serve that already runs on the cluster listens
    elsewhere (Serve keeps the options it started with)."""
    limits = limits or Limits()
    if tokens.insecure:
        log.warning(INSECURE_WARNING)
    options: dict[str, Any] = {"host": host, "port": port}
    if tls is not None:
        tls.check()
        options |= {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
    serve.start(http_options=options)
    deployment: Any = LedgerAPI
    app = deployment.options(
        num_replicas=replicas,
        max_ongoing_requests=limits.max_ongoing,
        max_queued_requests=limits.max_queued,
        backpressure_config=BackpressureConfig(
            status_code=503, retry_after_s=limits.queue_retry_after_s
        ),
    ).bind(settings.for_api(), tokens, command_timeout, limits)
    name = Names.of(settings).http_app
    serve.run(app, name=name, route_prefix="/")
    scheme = "https" if tls is not None else "http"
    url = f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    started = time.monotonic()
    while True:
        if _answers(url):
            return url
        waited = time.monotonic() - started
        if waited > _MISMATCH_AFTER_S and _running(name):
            raise ValueError(
                f"the API runs but does not answer at {url}: Serve was already running on this "
                "Ray cluster with other HTTP options (host, port or TLS), which it keeps; "
                "`eventledger stop --all` shuts Serve down, then serve again"
            )
        if waited > timeout:
            raise TimeoutError(f"the HTTP API does not answer at {url} after {timeout:.0f}s")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    """Whether ``url``/healthz answers 200. A liveness probe of the address just deployed,
    not a trust decision: a self-signed certificate is accepted here."""
    try:
        return httpx.get(f"{url}/healthz", timeout=5, verify=False).status_code == 200
    except httpx.HTTPError:
        return False


def _running(name: str) -> bool:
    application = serve.status().applications.get(name)
    return application is not None and application.status == "RUNNING"


def stop_http(app_id: str, *, shutdown: bool = False) -> bool:
    """Remove the API of ``app_id``; False when there was none (or no Serve). Serve itself
    (its controller and the proxy that holds the port) stops too when nothing else is served,
    or whatever else it serves with ``shutdown``."""
    name = Names(app_id).http_app
    try:
        removed = name in serve.status().applications
        if removed:
            serve.delete(name)
        if shutdown or not serve.status().applications:
            serve.shutdown()  # type: ignore[no-untyped-call]
    except Exception as e:  # no Serve on this cluster
        log.info("no HTTP API to stop: %s", e)
        return False
    return removed
