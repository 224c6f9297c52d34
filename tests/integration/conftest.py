"""A deployed service per test: topics, partition actors on the session's Ray, a client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from actors.client import LedgerClient
from actors.launcher import deploy, undeploy
from topology.settings import Settings


@dataclass
class Service:
    settings: Settings
    handles: list[Any]
    client: LedgerClient


@pytest.fixture
def settings(bootstrap: str, app_id: str, state_dir: str) -> Settings:
    return Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=2, state_dir=state_dir, environ={}
    )


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    """The application of ``settings`` deployed on the session's Ray, with a client."""
    handles = deploy(settings, detached=False)
    client = LedgerClient(settings, timeout=60)
    try:
        yield Service(settings, handles, client)
    finally:
        client.close()
        undeploy(settings)


@pytest.fixture
def service(settings: Settings, ray_local: None) -> Iterator[Service]:
    with running(settings) as served:
        yield served
