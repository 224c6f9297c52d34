"""Partition actors go only where the partition resource is: on a ``ray.cluster_utils``
cluster whose head does not offer it, the head gets no partition actor, the worker gets all,
and each reserves its slot and its memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ray

from actors.audit import fold_events
from actors.ray_state import alive_nodes, describe_actor
from ledger.aggregate import LEDGER
from ledger.commands import Deposit, OpenAccount, Withdraw
from tests.conftest import ray_cluster_of
from tests.integration.conftest import running
from tests.integration.waiting import wait_until
from topology.names import NAMESPACE, Names
from topology.settings import Settings

_RESOURCE = "eventledger_partition"

pytestmark = [pytest.mark.cluster, pytest.mark.slow]  # its own Ray cluster: 25 s


@pytest.fixture(scope="module")
def head_without_slots(_ray_session: None) -> Iterator[Any]:
    """A head that offers no partition resource, and one worker that does."""
    with ray_cluster_of({"num_cpus": 1, "object_store_memory": 128 * 1024**2}) as cluster:
        yield cluster


def test_a_head_without_the_partition_resource_gets_no_partition_actor(
    head_without_slots: Any, settings: Settings
) -> None:
    head = head_without_slots.head_node.node_id
    slotted = alive_nodes(_RESOURCE)
    assert len(slotted) == 1 and head not in slotted
    assert settings.partition_resource == _RESOURCE
    with running(settings) as served:
        names = Names(settings.app_id)
        infos = [describe_actor(names.partition_actor(p), NAMESPACE) for p in range(2)]
        assert all(i is not None and i.node_id == slotted[0] for i in infos)

        def reserved(resource: str) -> float:
            return ray.cluster_resources()[resource] - ray.available_resources().get(resource, 0)

        wait_until(lambda: reserved(_RESOURCE) == 2, 30, "both slots reserved")
        assert reserved("memory") >= 2 * settings.reservation().memory

        c = served.client
        assert c.execute("a", OpenAccount("EUR")).accepted
        assert c.execute("b", OpenAccount("EUR")).accepted
        assert c.execute("a", Deposit(700)).accepted
        assert c.execute("b", Withdraw(1)).code == "insufficient_funds"
        assert sum(c.reads.view(x).balance for x in "ab") == 700  # type: ignore[union-attr]
        assert sum(s.balance for s in fold_events(settings, LEDGER).values()) == 700
