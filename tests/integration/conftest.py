"""A deployed service per test, on the session's Ray: deployed through its coordinator (the
production path) with a client, or as bare partition actors (``bare_service``) for a test
that must not have a supervisor replace what it breaks on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from actors.deployment import deploy_coordinator, stop_service
from actors.launcher import deploy, partition_actor, undeploy
from eventledger.bank import BankClient
from ledger import LEDGER
from topology.settings import Settings


@dataclass
class Service:
    settings: Settings
    handles: list[Any]
    client: BankClient


@pytest.fixture
def settings(bootstrap: str, app_id: str, state_dir: str) -> Settings:
    return Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=2, state_dir=state_dir, environ={}
    )


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    """The application of ``settings`` deployed through its coordinator, with a client."""
    deploy_coordinator(settings, LEDGER, timeout=120)
    handles = [partition_actor(settings.app_id, p) for p in range(settings.partitions)]
    client = BankClient(settings, timeout=60)
    try:
        yield Service(settings, handles, client)
    finally:
        client.close()
        stop_service(settings.app_id)


@pytest.fixture
def service(settings: Settings, ray_local: None) -> Iterator[Service]:
    with running(settings) as served:
        yield served


@pytest.fixture
def bare_service(settings: Settings, ray_local: None) -> Iterator[Service]:
    handles = deploy(settings, LEDGER, detached=False)
    client = BankClient(settings, timeout=60)
    try:
        yield Service(settings, handles, client)
    finally:
        client.close()
        undeploy(settings)
