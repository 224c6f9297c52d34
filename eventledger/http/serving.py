"""The HTTP API deployed, found answering, and removed, in one of three serving modes
(``Serving``): Ray Serve through its proxy, Ray Serve's direct ingress, or our own uvicorn
workers (``eventledger.http.workers``). Every mode serves the same ``api`` with the same
start of each process (``eventledger.http.startup``).

Serve modes: one application per service (``Names.http_app``), at route prefix ``/`` (so one
API per Ray cluster and port). Each replica (Serve's or a worker) holds its own
``BankClient`` (its own reply consumer) and the token table's hashes, and the API tier's
Kafka properties only (``Settings.for_api``), never the service's own. Bounds (``Limits``): a
replica works on at most ``max_ongoing`` requests and at most ``max_queued`` more wait
(beyond, 503 with ``Retry-After``: Serve's own plain-text body, as Serve answers before any
replica sees the request; a problem body from the uvicorn workers,
``eventledger.http.admission``), so one client's flood cannot grow memory without end; each
token gets at most ``rate_per_token`` requests a second on a replica (429 with
``Retry-After`` beyond); every request has a deadline (``eventledger.http.deadlines``).

Serve's own ``request_timeout_s`` is left unset: it answers 408 (which says the client was
slow to send) in plain text, and it is an option of the whole Serve instance, kept from the
first ``serve.start``; the app's deadline answers 504 with a problem body instead.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Any

import httpx
import ray
from ray import serve
from ray.serve.config import BackpressureConfig

from eventledger.http.app import api
from eventledger.http.auth import TokenTable
from eventledger.http.limits import Limits
from eventledger.http.startup import INSECURE_WARNING, Tls, close_replica, open_replica
from eventledger.http.workers import start_workers, stop_workers
from topology.names import Names
from topology.settings import Settings

__all__ = [
    "DEFAULT_SERVING",
    "INSECURE_WARNING",
    "LedgerAPI",
    "Serving",
    "Tls",
    "deploy_http",
    "stop_http",
]

log = logging.getLogger(__name__)

_MISMATCH_AFTER_S = 10.0
_ALL_INTERFACES = ("0.0.0.0", "::")


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class LedgerAPI:
    """A replica: the routes of ``eventledger.http.app`` over this replica's client."""

    def __init__(
        self, settings: Settings, tokens: TokenTable, command_timeout: float, limits: Limits
    ) -> None:
        self._replica = open_replica(settings, tokens, command_timeout, limits)

    def __del__(self) -> None:
        replica = getattr(self, "_replica", None)
        if replica is not None:
            close_replica(replica)


class Serving(StrEnum):
    """How the API's processes receive requests (``deploy_http``; see docs/http.md)."""

    UVICORN = "uvicorn"
    """Our own ``HttpWorker`` actors (``eventledger.http.workers``): uvicorn on one port
    shared with ``SO_REUSEPORT``, ``replicas`` per node; no Ray Serve."""
    PROXY = "proxy"
    """Ray Serve: its proxy actor (one Python process on the head) forwards every request
    to a replica over Ray."""
    DIRECT = "direct"
    """Ray Serve's direct ingress: each replica listens on a port of its own (30000–31000),
    no proxy in between (the proxy stays on the head, as a fallback on the Serve port)."""
    HAPROXY = "haproxy"
    """Ray Serve's HAProxy mode: direct ingress, with a bundled HAProxy on the Serve port
    of each node spreading requests over the replicas' ports; no TLS frontend."""

    @property
    def ray_env(self) -> str | None:
        """The variable that must be ``1`` in the environment of every Ray process before
        Ray starts (Serve reads it once, at import), or None."""
        return _RAY_ENV.get(self)


_RAY_ENV = {
    Serving.DIRECT: "RAY_SERVE_ENABLE_DIRECT_INGRESS",
    Serving.HAPROXY: "RAY_SERVE_ENABLE_HA_PROXY",
}
DEFAULT_SERVING = Serving.UVICORN


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
    serving: Serving = DEFAULT_SERVING,
) -> str:
    """Deploy (or update, or move to another ``serving`` mode) the API of ``settings`` and
    return its URL once ``/healthz`` answers there. ``command_timeout``: how long a command
    waits for its reply (then 504 ``outcome_unknown``); ``limits``: each replica's bounds
    (``Limits()``); ``replicas``: Serve replicas in all, or uvicorn workers per node.
    Raises TimeoutError, and ValueError when the port is held by something else (a Serve
    that already runs on the cluster keeps the options it started with) or, for ``direct``,
    when Ray runs without direct ingress."""
    limits = limits or Limits()
    if tokens.insecure:
        log.warning(INSECURE_WARNING)
    if tls is not None:
        tls.check()
        if serving is Serving.HAPROXY:
            raise ValueError("the haproxy mode serves no TLS: terminate TLS in front of it")
    name = Names.of(settings).http_app
    api_settings = settings.for_api()
    if serving is Serving.UVICORN:
        _remove_serve_app(name)  # Serve's proxy, if it served only this API, frees the port
        start_workers(
            api_settings, tokens, host=host, port=port, replicas=replicas,
            command_timeout=command_timeout, tls=tls, limits=limits,
        )  # fmt: skip
        return _wait_answering(_url(host, port, tls), timeout)
    stop_workers(settings.app_id)
    options: dict[str, Any] = {"host": host, "port": port}
    if tls is not None:
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
    ).bind(api_settings, tokens, command_timeout, limits)
    serve.run(app, name=name, route_prefix="/")
    if serving is Serving.DIRECT:  # a replica listens on the address asked, its own port
        ip, port = _direct_target(name, port, timeout)
        host = ip if host in _ALL_INTERFACES else host
    url = _url(host, port, tls)
    started = time.monotonic()
    while not _answers(url):
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
    return url


def _url(host: str, port: int, tls: Tls | None) -> str:
    scheme = "https" if tls is not None else "http"
    return f"{scheme}://{'127.0.0.1' if host in _ALL_INTERFACES else host}:{port}"


def _wait_answering(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the HTTP API does not answer at {url} after {timeout:.0f}s")
        time.sleep(0.2)
    return url


def _direct_target(name: str, serve_port: int, timeout: float) -> tuple[str, int]:
    """The (ip, port) of the first replica of application ``name`` that listens directly,
    through the Serve controller (a private call: Serve publishes the replicas' ports to
    load balancers only this way). ValueError when the targets stay Serve's proxy."""
    from ray.serve.context import _get_global_client

    controller: Any = _get_global_client()._controller  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while True:
        groups = ray.get(controller.get_target_groups.remote(name), timeout=30)
        targets = [t for g in groups if g.app_name == name for t in g.targets]
        direct = [t for t in targets if t.port != serve_port]
        if direct:
            return direct[0].ip, direct[0].port
        if time.monotonic() > deadline:
            raise ValueError(
                f"Serve's replicas of {name} do not listen directly: Ray runs without "
                f"{Serving.DIRECT.ray_env}=1 (it must be in the environment of every Ray "
                "process before Ray starts)"
            )
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


def _remove_serve_app(name: str, *, shutdown: bool = False) -> bool:
    """Remove Serve application ``name`` if Serve runs it (False if not); Serve itself (its
    controller and the proxy that holds the port) stops too when it serves nothing else, or
    whatever else it serves with ``shutdown``."""
    try:
        present = name in serve.status().applications
        if present:
            serve.delete(name)
        if shutdown or not serve.status().applications:
            serve.shutdown()  # type: ignore[no-untyped-call]
    except Exception as e:  # no Serve on this cluster
        log.debug("no Serve: %s", e)
        return False
    return present


def stop_http(app_id: str, *, shutdown: bool = False) -> bool:
    """Remove the API of ``app_id`` (its uvicorn workers, and its Serve application); False
    when there was none. Serve itself (its controller and the proxy that holds the port)
    stops too when nothing else is served, or whatever else it serves with ``shutdown``."""
    workers = stop_workers(app_id)
    removed = _remove_serve_app(Names(app_id).http_app, shutdown=shutdown)
    return workers or removed
