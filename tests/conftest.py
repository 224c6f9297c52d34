"""Session fixtures: a real Kafka broker from the project's launcher, a real local Ray.

Unit tests (``tests/unit``) use neither; integration tests (``tests/integration``) get the
``integration`` marker automatically and each gets its own application id.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventledger.broker import Broker, BrokerHome

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker for the session: ``KAFKA_BOOTSTRAP_SERVERS`` or one started by the launcher."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    home = BrokerHome(
        path=tmp_path_factory.mktemp("broker"),
        port=_free_port(),
        controller_port=_free_port(),
    )
    broker = Broker(home)
    address = broker.start()
    try:
        yield address
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray for the session: two CPUs, no dashboard."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace=f"eventledger-tests-{uuid.uuid4().hex[:6]}",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def app_id() -> str:
    """A fresh application id so that topics never collide between tests."""
    return f"t-{uuid.uuid4().hex[:10]}"
