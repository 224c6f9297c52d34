"""The HTTP API on uvicorn workers in Ray actors (the ``uvicorn`` serving mode), without Ray
Serve and its single proxy process.

Each ``HttpWorker`` is a detached named actor pinned to a node (``replicas`` per alive node),
with its own replica (``open_replica``: its own client, readiness, rate limiter) and its own
listening socket bound with ``SO_REUSEPORT`` on (host, port): the kernel spreads new
connections over the workers of a node. Each runs ``uvicorn.Server.serve(sockets=[...])`` over
the same ``api`` on uvloop in a thread of its own, wrapped in ``Admission`` (the bounds Serve's
proxy kept: ``max_ongoing`` running, ``max_queued`` waiting, 503 beyond), with TLS from
uvicorn's own options.

Invariants: workers of one deployment share a generation in their names
(``{http_app}-worker-{generation}-{node}-{i}``); deploying again starts a new generation, and
only once all of it answers are the older workers stopped (each finishes its requests, up to
``_GRACE_S``) and removed, so the port keeps answering. Ray restarts a worker whose process
dies (its constructor binds again); a node that joins later gets workers at the next deploy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import ray
import uvicorn
import uvloop
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from eventledger.http.admission import Admission
from eventledger.http.app import api
from eventledger.http.auth import TokenTable
from eventledger.http.limits import Limits
from eventledger.http.startup import Tls, close_replica, open_replica
from topology.names import NAMESPACE, Names
from topology.settings import Settings

__all__ = ["HttpWorker", "start_workers", "stop_workers", "worker_names"]

log = logging.getLogger(__name__)

_GRACE_S = 10.0  # how long a worker being replaced may finish its requests
_START_S = 60.0  # how long a worker may take to listen


class HttpWorker:
    """One uvicorn server over ``api`` in this actor's process (see the module's invariants)."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenTable,
        command_timeout: float,
        limits: Limits,
        *,
        host: str,
        port: int,
        tls: Tls | None,
    ) -> None:
        self._socket = _listen(host, port, backlog=limits.max_queued)
        self._replica = open_replica(settings, tokens, command_timeout, limits)
        ssl: dict[str, Any] = {}
        if tls is not None:
            ssl = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
        config = uvicorn.Config(
            Admission(api, limits),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=int(_GRACE_S),
            **ssl,
        )
        self._server = uvicorn.Server(config)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="uvicorn", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self._server.serve(sockets=[self._socket]))
        except BaseException as e:  # reported by ready()
            log.exception("the HTTP worker's server ended")
            self._failure = e

    def ready(self) -> bool:
        """Wait until the server accepts connections (True), or it failed (RuntimeError)."""
        deadline = time.monotonic() + _START_S
        while not self._server.started:
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server did not start: {self._failure!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server did not start in {_START_S:.0f}s")
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        """Stop accepting, finish the requests running (up to the grace), let go."""
        self._server.should_exit = True
        self._thread.join(_GRACE_S + 5)
        close_replica(self._replica)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on (host, port) that other workers on this node share."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _prefix(app_id: str) -> str:
    return f"{Names(app_id).http_app}-worker-"


def worker_names(app_id: str) -> list[str]:
    """The named workers of ``app_id``'s API now registered in Ray, any generation."""
    prefix = _prefix(app_id)
    named: list[dict[str, str]] = ray.util.list_named_actors(all_namespaces=True)
    return sorted(
        a["name"] for a in named if a["namespace"] == NAMESPACE and a["name"].startswith(prefix)
    )


def start_workers(
    settings: Settings,
    tokens: TokenTable,
    *,
    host: str,
    port: int,
    replicas: int,
    command_timeout: float,
    tls: Tls | None,
    limits: Limits,
) -> None:
    """Start a new generation of ``replicas`` workers per alive node and wait until each
    listens; then stop the older ones. ValueError when a worker cannot listen (the port is
    taken by something else, such as a Serve proxy)."""
    before = worker_names(settings.app_id)
    generation = f"{time.time_ns():x}"
    remote: Any = ray.remote(HttpWorker)
    nodes: Any = ray.nodes  # untyped in Ray
    workers = []
    for node in sorted(n["NodeID"] for n in nodes() if n["Alive"]):
        for i in range(replicas):
            workers.append(
                remote.options(
                    name=f"{_prefix(settings.app_id)}{generation}-{node[:8]}-{i}",
                    namespace=NAMESPACE,
                    lifetime="detached",
                    max_restarts=-1,
                    num_cpus=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                ).remote(settings, tokens, command_timeout, limits, host=host, port=port, tls=tls)
            )
    try:
        ray.get([w.ready.remote() for w in workers], timeout=_START_S + 30)
    except Exception as e:
        for worker in workers:
            ray.kill(worker, no_restart=True)
        why = str(e).strip().splitlines()[-1]
        raise ValueError(f"the HTTP workers cannot serve on {host}:{port}: {why}") from None
    _stop(before)


def stop_workers(app_id: str) -> bool:
    """Stop and remove every worker of ``app_id``'s API; False when there was none."""
    names = worker_names(app_id)
    _stop(names)
    return bool(names)


def _stop(names: list[str]) -> None:
    handles = []
    for name in names:
        try:
            handles.append(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:  # gone meanwhile
            continue
    stopping = [h.stop.remote() for h in handles]
    try:
        ray.get(stopping, timeout=_GRACE_S + 15)
    except Exception as e:  # a worker that does not stop in time is removed all the same
        log.warning("HTTP workers did not all stop cleanly: %s", e)
    for handle in handles:
        ray.kill(handle, no_restart=True)
