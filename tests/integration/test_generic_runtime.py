"""The runtime is generic: a service of counters (``tests/integration/counter.py``, which
shares nothing with the ledger) runs through the same coordinator, partition actors, client,
id memory and snapshots, on the real broker and Ray."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from actors.audit import fold_events, read_events
from actors.client import LedgerClient
from actors.deployment import deploy_coordinator, stop_service
from actors.messages import PartitionStats
from actors.ray_state import partition_actor
from actors.reads import Reads
from tests.integration.counter import COUNTER, Add, CountView, Seal
from topology.settings import Settings


@pytest.fixture
def counters(settings: Settings, ray_local: None) -> Iterator[LedgerClient]:
    deploy_coordinator(settings, COUNTER, timeout=120)
    client = LedgerClient(settings, timeout=60)
    try:
        yield client
    finally:
        client.close()
        stop_service(settings.app_id)


def test_counters_run_through_the_same_actors(settings: Settings, counters: LedgerClient) -> None:
    c = counters
    with Reads(settings, CountView) as counts:
        keys = [f"counter-{i}" for i in range(6)]
        for f in [c.send(k, Add(i + 1)) for i, k in enumerate(keys) for _ in range(3)]:
            assert f.result(60).accepted
        again = c.execute("counter-0", Add(5), command_id="once")
        assert c.execute("counter-0", Add(5), command_id="once") == again  # the id memory
        assert c.execute("counter-1", Seal()).accepted
        refused = c.execute("counter-1", Add(1))
        assert (refused.accepted, refused.code) == (False, "sealed")
        assert c.execute("counter-2", Add(0)).code == "not_positive"

        assert counts.view("counter-0") == CountView(3 + 5, sealed=False)
        assert counts.view("counter-1") == CountView(6, sealed=True)
        folded = fold_events(settings, COUNTER)
        assert {k: (s.value, s.sealed) for k, s in folded.items()} == {
            k: (3 * (i + 1) + (5 if i == 0 else 0), i == 1) for i, k in enumerate(keys)
        }
        once = [e for e in read_events(settings, COUNTER) if e.envelope.command_id == "once"]
        assert len(once) == 1

        # A restart restores the counters from their snapshots.
        p = c.partition_of("counter-0")
        ray.kill(partition_actor(settings.app_id, p), no_restart=False)
        assert c.execute("counter-0", Add(1), timeout=60).accepted
        assert counts.view("counter-0") == CountView(9, sealed=False)
        stats: PartitionStats = ray.get(partition_actor(settings.app_id, p).stats.remote())
        assert stats.status == "running" and stats.restored_aggregates >= 1
