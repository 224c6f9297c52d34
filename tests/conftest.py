"""Session fixtures: a real Kafka broker from the project's launcher, a real local Ray.

Unit tests (``tests/unit``) use neither; integration tests (``tests/integration``) get the
``integration`` marker automatically and each gets its own application id.

Ray allows one connection per process, so the two kinds of Ray take turns: ``ray_local`` (a
single-node Ray, started on first use and kept) and ``ray_cluster`` (a module-scoped
multi-node ``ray.cluster_utils.Cluster``). ``ray_cluster`` shuts the local Ray down and
``ray_local`` starts it again when a later test needs it; ``_RAY`` says which one is up. The
tests on a cluster carry the ``cluster`` marker and run after the others, before the fault
suite's (which starts a broker and a Ray of its own). What lives on the local Ray beyond a
test (the shared services of ``tests/integration/conftest.py``) registers with
``on_local_ray_end`` and is stopped just before ``end_ray`` shuts that Ray down.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventledger.broker import Broker, BrokerHome
from eventledger.runtime import LOCAL_RAY_SYSTEM_CONFIG, free_port, local_resources
from topology.resources import DEFAULT_RESOURCE, LOCAL_SLOTS

log = logging.getLogger(__name__)

CLUSTER_NODE: dict[str, Any] = {
    "num_cpus": 1,
    "object_store_memory": 128 * 1024**2,
    "resources": {DEFAULT_RESOURCE: LOCAL_SLOTS},  # every node may hold partitions
}
"""The arguments of every node of ``ray_cluster`` (pass them to ``add_node`` too)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the integration tests; run the ``shared_last`` ones after the other tests on the
    local Ray (they break a service the others share; ``shared_last(stops=True)``, which
    stops it, after those), the ``cluster`` ones after them (the local Ray is then started
    once, not again after each cluster), and the ``faults`` ones last (when ``make test``'s
    unit tests, run alongside, have long ended). The sort is stable: within each group, the
    files' order."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda i: (_marked(i, "faults"), _marked(i, "cluster"), _shared_last(i)))


def _marked(item: pytest.Item, marker: str) -> bool:
    return item.get_closest_marker(marker) is not None


def _shared_last(item: pytest.Item) -> tuple[bool, bool]:
    marker = item.get_closest_marker("shared_last")
    return marker is not None, marker is not None and marker.kwargs.get("stops", False)


@dataclass(frozen=True)
class SaslLogin:
    """The session broker's SASL/PLAIN listener and the one user it accepts."""

    bootstrap: str
    user: str
    password: str


@dataclass(frozen=True)
class AclLogins:
    """The session broker's SASL users under its authorizer: ``admin`` above the ACLs
    (``sasl_login``'s user), ``worker`` and ``api`` with only what ACLs allow them."""

    admin: SaslLogin
    worker: SaslLogin
    api: SaslLogin


_SASL_USER = "ledger"
_SASL_PASSWORD = f"pw-{uuid.uuid4().hex}"  # distinctive: tests grep every output for it
_ACL_USERS = {role: (role, f"pw-{role}-{uuid.uuid4().hex}") for role in ("worker", "api")}
_BROKER: dict[str, BrokerHome | None] = {"home": None}


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker for the session: ``KAFKA_BOOTSTRAP_SERVERS`` or one started by the launcher
    (in its second configuration: a SASL/PLAIN listener beside the plain one, its users
    under Kafka's authorizer; the plain listener's clients are above it)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    home = BrokerHome(
        path=tmp_path_factory.mktemp("broker"),
        port=free_port(),
        controller_port=free_port(),
        sasl_port=free_port(),
        sasl_users=((_SASL_USER, _SASL_PASSWORD), *_ACL_USERS.values()),
        super_users=(_SASL_USER,),
    )
    broker = Broker(home)
    address = broker.start()
    _BROKER["home"] = home
    try:
        yield address
    finally:
        gc.collect()  # the clients only reference cycles still hold are destroyed here
        broker.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """No Kafka client of this process may outlive its test: one that does goes on dialling
    the stopped broker (and logging it when polled). Checked once every test's captured logs
    (whose tracebacks hold frames) are released; a leftover fails a session that passed."""
    if _BROKER["home"] is None:
        return
    gc.collect()
    left = open_kafka_clients()
    if left and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"Kafka clients outlived their tests: {'; '.join(left)}", red=True)


@pytest.fixture(scope="session")
def sasl_login(bootstrap: str) -> SaslLogin:
    """The session broker's SASL/PLAIN listener (skipped with an external broker)."""
    home = _BROKER["home"]
    if home is None or home.sasl_bootstrap is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS is set: no local SASL listener")
    return SaslLogin(home.sasl_bootstrap, _SASL_USER, _SASL_PASSWORD)


@pytest.fixture(scope="session")
def acl_logins(sasl_login: SaslLogin) -> AclLogins:
    """The SASL users of the session broker's authorizer (skipped with an external broker)."""
    worker, api = (SaslLogin(sasl_login.bootstrap, *_ACL_USERS[r]) for r in ("worker", "api"))
    return AclLogins(sasl_login, worker, api)


def open_kafka_clients() -> list[str]:
    """Every confluent-kafka client of this process that is not closed (an admin client has
    no close: any alive counts): its kind and what holds it."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    clients = [o for o in gc.get_objects() if isinstance(o, Consumer | Producer | AdminClient)]
    named = [f"{type(c).__name__} of {_holder(c, besides=clients)}" for c in clients]
    return [name for client, name in zip(clients, named, strict=True) if not _closed(client)]


def _closed(client: Any) -> bool:
    """Whether ``client`` is closed: a call on a closed one raises RuntimeError at once. The
    call runs on a thread of its own, waited for a second: a consumer that a leftover thread
    is polling can keep it waiting (then it is open, and must not hang the session)."""
    from confluent_kafka import Consumer, KafkaException

    answer: list[bool] = []

    def probe() -> None:
        try:
            client.memberid() if isinstance(client, Consumer) else client.poll(0)
        except RuntimeError:
            answer.append(True)
            return
        except KafkaException:
            pass  # open, and dead (fatal, fenced): still holding its connections
        answer.append(False)

    thread = threading.Thread(target=probe, name="kafka-client-probe", daemon=True)
    thread.start()
    thread.join(1.0)
    return answer == [True]


def _holder(obj: object, besides: object) -> str:
    """What refers to ``obj`` (other than ``besides``): ``Owner.attribute`` for an attribute
    (of an object, or of a module through its dict), else the referrer's type."""
    names: list[str] = []
    for ref in gc.get_referrers(obj):
        if ref is besides:
            continue
        owner, attrs = ref, getattr(ref, "__dict__", None)
        if isinstance(ref, dict):
            attrs = ref
            for o in gc.get_referrers(ref):
                if getattr(o, "__dict__", None) is ref:
                    owner = o
        name = type(owner).__name__
        for key, value in (attrs or {}).items():  # a loop: a comprehension would hold obj
            if value is obj:
                name = f"{name}.{key}"
        names.append(name)
    return " and ".join(names) or "nothing"


_RAY: dict[str, str | None] = {"kind": None}
_LOCAL_RAY_ENDS: list[Callable[[], None]] = []
# Node failures are noticed in ~2 s rather than Ray's default ~15 s.
_FAST_HEALTH_CHECKS = {
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 4,
}


@pytest.fixture(scope="session")
def _ray_session() -> Iterator[None]:
    """Shuts down whichever Ray is up at the end of the session."""
    yield
    end_ray()


def on_local_ray_end(callback: Callable[[], None]) -> None:
    """Have ``end_ray`` call ``callback`` before it shuts the local Ray down (while it still
    answers): for what outlives a test on it, a shared service."""
    _LOCAL_RAY_ENDS.append(callback)


def end_ray() -> None:
    """Shut down the Ray this process is connected to, if any; the local one once what was
    registered with ``on_local_ray_end`` has ended, last registered first."""
    import ray

    try:
        while _RAY["kind"] == "local" and _LOCAL_RAY_ENDS:
            _LOCAL_RAY_ENDS.pop()()
    finally:
        _LOCAL_RAY_ENDS.clear()
        if ray.is_initialized():
            ray.shutdown()
        _RAY["kind"] = None


@pytest.fixture
def ray_local(_ray_session: None) -> None:
    """A local Ray: two CPUs, no dashboard; shared by every test that uses it."""
    start_local_ray()


def start_local_ray() -> None:
    """Start the session's local Ray unless it is up (``ray_local``, for module fixtures)."""
    import ray

    if ray.is_initialized() and _RAY["kind"] == "local":
        return
    end_ray()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        namespace=f"eventledger-tests-{uuid.uuid4().hex[:6]}",
        log_to_driver=False,
        configure_logging=False,
        resources=local_resources(),
        _system_config=LOCAL_RAY_SYSTEM_CONFIG,
    )
    _RAY["kind"] = "local"


@pytest.fixture(scope="module")
def ray_cluster(_ray_session: None) -> Iterator[Any]:
    """A two-node Ray cluster on this machine (head + one worker) for one test module;
    tests add and remove nodes with ``cluster.add_node`` / ``cluster.remove_node``."""
    with ray_cluster_of(CLUSTER_NODE) as cluster:
        yield cluster


@contextmanager
def ray_cluster_of(head: dict[str, Any]) -> Iterator[Any]:
    """A Ray cluster of a head with the node arguments ``head`` and one ``CLUSTER_NODE``
    worker, this process connected to it (the local Ray shut down meanwhile)."""
    import ray
    from ray.cluster_utils import Cluster

    end_ray()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **head,
            "include_dashboard": False,
            "_system_config": {**LOCAL_RAY_SYSTEM_CONFIG, **_FAST_HEALTH_CHECKS},
        },
    )
    try:
        cluster.add_node(**CLUSTER_NODE)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        _RAY["kind"] = "cluster"
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _RAY["kind"] = None
        cluster.shutdown()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where partition actors keep their local state (the id memory) during the session."""
    return str(tmp_path_factory.mktemp("state"))


@pytest.fixture
def app_id() -> str:
    """A fresh application id so that topics never collide between tests."""
    return f"t-{uuid.uuid4().hex[:10]}"
