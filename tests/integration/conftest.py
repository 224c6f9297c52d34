"""A deployed service per test, on the session's Ray, always deployed through its
coordinator (the one deployment path) with a client; ``bare_service`` then ends the
coordinator, for a test that must not have a supervisor replace what it breaks on purpose
(its actors are stopped by name at the end). ``shared`` holds two services for the whole
session, deployed on first use: ``supervised()``, for tests that each keep to accounts and
command ids of their own and check only those, and ``bare()`` without a coordinator, whose
tests take turns breaking actors and leave them running (or carry ``shared_last``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.deployment import deploy_coordinator, find_coordinator, stop_service
from actors.ray_state import partition_actors
from actors.supervisor import retire
from eventledger.bank import BankClient
from ledger import LEDGER
from tests.conftest import on_local_ray_end, start_local_ray
from topology.names import Names
from topology.settings import Settings


@dataclass
class Service:
    settings: Settings
    handles: list[Any]
    client: BankClient


def app_settings(
    bootstrap: str, state_dir: str, *, partitions: int = 2, app_id: str | None = None
) -> Settings:
    """Settings of a test application of its own (a fresh id unless ``app_id``), on the
    session's broker, with nothing taken from the environment."""
    return Settings.resolve(
        app_id=app_id or f"t-{uuid.uuid4().hex[:10]}",
        bootstrap_servers=bootstrap,
        partitions=partitions,
        state_dir=state_dir,
        environ={},
    )


@pytest.fixture
def settings(bootstrap: str, app_id: str, state_dir: str) -> Settings:
    return app_settings(bootstrap, state_dir, app_id=app_id)


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    """The application of ``settings`` deployed through its coordinator, with a client."""
    deploy_coordinator(settings, LEDGER, timeout=120)
    handles = partition_actors(settings.app_id, settings.partitions)
    client = BankClient(settings, timeout=60)
    try:
        yield Service(settings, handles, client)
    finally:
        client.close()
        if not stop_service(settings.app_id):  # its coordinator was ended: stop its actors
            for p in range(settings.partitions):
                for m in range(settings.max_standbys + 1):
                    retire(Names.of(settings).member_actor(p, m), graceful=True)


def ray_logs() -> str:
    """Every log file of the Ray session this process is connected to, as one text."""
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    return "".join(p.read_text(errors="replace") for p in logs.glob("*") if p.is_file())


def end_supervision(settings: Settings) -> None:
    """End the application's coordinator for good (once Ray has released its name, so no
    tick is in flight): its actors run on, unsupervised."""
    assert find_coordinator(settings.app_id) is not None
    retire(Names.of(settings).coordinator_actor, graceful=False)


@pytest.fixture
def service(settings: Settings, ray_local: None) -> Iterator[Service]:
    with running(settings) as served:
        yield served


@pytest.fixture
def bare_service(settings: Settings, ray_local: None) -> Iterator[Service]:
    """The service's actors, deployed as always, without a coordinator to supervise them."""
    with running(settings) as served:
        end_supervision(settings)
        yield served


class SharedServices:
    """The session's two shared services on the local Ray (a deployment takes seconds),
    each deployed on first use and stopped just before the local Ray ends (a cluster's turn,
    the fault suite, the session's end); a later use deploys it again, and so does a use of
    the supervised one after a test stopped it (``shared_last(stops=True)``, the very last).

    ``supervised()`` runs with its coordinator. Its tests each keep to accounts and command
    ids of their own and check of the whole service only what holds whatever the others did
    (every view is the fold of its events, say); a test that kills its actors or blocks a
    partition carries ``shared_last`` and runs after every other test on the local Ray.
    ``bare()`` runs without one (``bare_service``): its tests take turns breaking actors,
    each leaving them running, or carrying ``shared_last`` when it leaves them broken. Ray
    restarts each actor at most ``RAY_RESTARTS`` times: the kills of a shared service's
    tests stay within that."""

    def __init__(self, bootstrap: str, state_dir: str) -> None:
        self._bootstrap = bootstrap
        self._state_dir = state_dir
        self._up: dict[bool, Service] = {}
        self._stops: dict[bool, ExitStack] = {}

    def supervised(self) -> Service:
        return self._get(supervised=True)

    def bare(self) -> Service:
        return self._get(supervised=False)

    def _get(self, *, supervised: bool) -> Service:
        start_local_ray()
        up = self._up.get(supervised)
        if supervised and up is not None and find_coordinator(up.settings.app_id) is None:
            self._end(supervised)  # stopped by its last test
        if supervised not in self._up:
            settings = app_settings(self._bootstrap, self._state_dir)
            with ExitStack() as stack:
                served = stack.enter_context(running(settings))
                if not supervised:
                    end_supervision(settings)
                stop = stack.pop_all()
            self._up[supervised] = served
            self._stops[supervised] = stop
            on_local_ray_end(lambda: self._end(supervised))
        return self._up[supervised]

    def _end(self, supervised: bool) -> None:
        """Stop the service (its client closed) unless it has ended already."""
        if self._up.pop(supervised, None) is not None:
            self._stops.pop(supervised).close()


@pytest.fixture(scope="session")
def shared(bootstrap: str, state_dir: str, _ray_session: None) -> SharedServices:
    return SharedServices(bootstrap, state_dir)
