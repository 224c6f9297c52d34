"""Stages 1 and 2 of an online repartition on the real broker and local Ray
(`docs/design-repartition.md`): a live application of 2 partitions is given slots and the
routing table's version 0, its topics grow to 4 partitions and its coordinator adopts them.
A client and a reader started before follow the control topic: they learn the new count and,
when the coordinator publishes a newer table (by hand here: no move exists yet, so the slot
moved owns none of the test's accounts), route by it, and so does every writer; the new
partitions run, and the money moved before and after is conserved."""

from __future__ import annotations

import pytest
import ray

from actors.deployment import find_coordinator
from actors.growth import grow_topics
from actors.messages import RowState
from actors.ray_state import partition_actor
from actors.reads import Reads
from ledger import AccountView, Deposit, OpenAccount
from topology.partitioner import partition_for
from topology.routing import RoutingTable
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

from .conftest import running
from .waiting import wait_until

ACCOUNTS = [f"grow-{i}" for i in range(6)]


def _open(client: object, account: str, amount: int) -> None:
    assert client.execute(account, OpenAccount("EUR")).accepted  # type: ignore[attr-defined]
    assert client.execute(account, Deposit(amount)).accepted  # type: ignore[attr-defined]


def _running(coordinator: object, partitions: int) -> bool:
    rows = ray.get(coordinator.status.remote(), timeout=30).rows  # type: ignore[attr-defined]
    return len(rows) == partitions and all(r.state is RowState.RUNNING for r in rows)


def _versions(settings: Settings) -> list[int]:
    """The routing table version each partition's writer routes by."""
    writers = [partition_actor(settings.app_id, p) for p in range(4)]
    return [s.routing_version for s in ray.get([w.stats.remote() for w in writers], timeout=30)]


# The slow group: test_repartition.py grows a live app through its coordinator in the
# default run.
pytestmark = pytest.mark.slow


@pytest.mark.usefixtures("ray_local")
def test_a_live_app_grows_from_2_to_4_partitions_and_its_clients_follow(
    settings: Settings,
) -> None:
    with running(settings) as served:
        client, reader = served.client, Reads(settings, AccountView)
        coordinator = find_coordinator(settings.app_id)
        try:
            for account in ACCOUNTS:
                _open(client, account, 1_000)
            a, b = next((x, y) for x in ACCOUNTS for y in ACCOUNTS
                        if client.partition_of(x) == 0 and client.partition_of(y) == 1)  # fmt: skip
            assert client.transfer(a, b, 300).accepted

            v0 = ray.get(coordinator.start_slots.remote(), timeout=60)
            assert v0 == RoutingTable.initial(2, 480)
            assert ray.get(coordinator.start_slots.remote(), timeout=60) == v0  # idempotent
            wait_until(lambda: client.routes.table == v0, 30, "the client reads table v0")

            lanes = settings.reply_lanes
            grown = grow_topics(settings, 4)
            layout = TopicLayout.of(settings)
            assert grown == {
                **{layout.name(k): 2 for k in TopicKind if k is not TopicKind.REPLIES},
                layout.name(TopicKind.REPLIES): 2 * lanes,
            }
            assert grow_topics(settings, 4) == {}  # already has 4: done
            with pytest.raises(ValueError, match="never shrinks"):
                grow_topics(settings, 3)
            assert ray.get(coordinator.adopt_partitions.remote(4, 480), timeout=60) == 4
            assert ray.get(coordinator.adopt_partitions.remote(4, 480), timeout=60) == 4

            wait_until(lambda: client.routes.partitions == 4, 30, "the client sees 4")
            wait_until(lambda: reader.routes.partitions == 4, 30, "the reader sees 4")
            wait_until(lambda: _running(coordinator, 4), 120, "partitions 2 and 3 run")

            # table v0: every account stays where Kafka's layout over 2 put it
            for account in ACCOUNTS:
                assert client.partition_of(account) == partition_for(account.encode(), 2)
            assert client.transfer(b, a, 120).accepted
            deposit = client.execute(a, Deposit(5))
            assert deposit.accepted and deposit.position is not None
            assert deposit.position.partition == 0

            # a table published by hand: one slot no account of the test is in, to 2
            used = {v0.slot_of(x.encode()) for x in ACCOUNTS}
            free = next(s for s in range(v0.slots) if s not in used)
            newcomer = next(
                k for k in (f"new-{i}" for i in range(100_000)) if v0.slot_of(k.encode()) == free
            )
            published = ray.get(coordinator.publish_routing.remote(v0.assign([free], 2, 1)))
            assert published.version == 1 and published.owners[free] == 2
            wait_until(lambda: client.partition_of(newcomer) == 2, 30, "the client's table v1")
            wait_until(lambda: reader.partition_of(newcomer) == 2, 30, "the reader's table v1")
            wait_until(lambda: _versions(settings) == [1, 1, 1, 1], 30, "every writer has v1")
            status = ray.get(coordinator.status.remote(), timeout=30)
            assert (status.slots, status.routing_version) == (480, 1)
            assert [r.slots for r in status.rows] == [239, 240, 1, 0]

            # the new partition executes it, and its reply comes on the lane assigned from 0
            _open(client, newcomer, 50)
            reply = client.execute(newcomer, Deposit(7))
            assert reply.position is not None and reply.position.partition == 2

            views = {x: reader.view(x) for x in [*ACCOUNTS, newcomer]}
            balances = {x: v.balance for x, v in views.items() if v is not None}
            assert balances[a] == 1_000 - 300 + 120 + 5 and balances[b] == 1_000 + 300 - 120
            assert sum(balances.values()) == 6 * 1_000 + 5 + 50 + 7, "money is conserved"
        finally:
            reader.close()
