"""Standbys on the real broker and Ray: each partition's standby restores, then follows its
writer's commits; once the writer is quiet, the standby holds exactly the writer's views at
the writer's position, and every id the writer remembers (a batch of reads answers the
same, from the standby). Reads go to the standby and ask
for at least a reply's position: a standby stopped across the deposit answers once resumed
while the read waits, and while it stays stopped the writer answers. Money conserved; no
assertion on time."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from actors.messages import ServedBy, ViewAt
from actors.ray_state import lookup_actor
from ledger import AccountView, Deposit, OpenAccount
from tests.conftest import start_local_ray
from topology.codec.keys import encode_id_key
from topology.names import NAMESPACE, Names
from topology.settings import Settings

from .conftest import Service, running
from .test_transfers import on_partition
from .waiting import wait_until


@pytest.fixture(scope="module")
def followed(bootstrap: str, state_dir: str, _ray_session: None) -> Iterator[Service]:
    """One service for the module (a deployment takes seconds), with one standby per
    partition, each of them following, and reads that wait up to 4 s for their bounds. Its
    two tests keep to accounts of their own (sb*, ryw*); the one that stops a standby runs
    last."""
    start_local_ray()
    settings = Settings.resolve(
        app_id=f"t-{uuid.uuid4().hex[:10]}",
        bootstrap_servers=bootstrap,
        partitions=2,
        state_dir=state_dir,
        standbys=1,
        read_wait_ms=4000,
        environ={},
    )
    with running(settings) as served:
        wait_for_standbys(settings)
        yield served


def wait_for_standbys(settings: Settings) -> list[Any]:
    """The handles of member 1 of every partition, once the coordinator saw each follow."""
    coordinator = lookup_actor(Names.of(settings).coordinator_actor, NAMESPACE)
    assert coordinator is not None

    def following() -> bool:
        members = ray.get(coordinator.members.remote(), timeout=30)
        return all(members.standbys[p] == [1] for p in range(settings.partitions))

    wait_until(following, 120, "a following standby per partition")
    names = Names.of(settings)
    return [ray.get_actor(names.member_actor(p, 1), namespace=NAMESPACE)
            for p in range(settings.partitions)]  # fmt: skip


def test_a_quiet_standby_holds_its_writers_views_position_and_ids(followed: Service) -> None:
    settings, c = followed.settings, followed.client
    accounts = [on_partition(settings, p, f"sb{p}") for p in range(settings.partitions)]
    ids: dict[int, list[bytes]] = {}  # partition → id keys its writer remembers
    for p, account in enumerate(accounts):
        assert c.execute(account, OpenAccount("EUR"), command_id=f"{account}-open").accepted
        ids[p] = [encode_id_key(account, f"{account}-open")]
        for i in range(5):
            assert c.execute(account, Deposit(100 + i), command_id=f"{account}-d{i}").accepted
            ids[p].append(encode_id_key(account, f"{account}-d{i}"))
    assert c.transfer(accounts[0], accounts[1], 50, transfer_id="sb-t").accepted
    ids[0].append(encode_id_key(accounts[0], "sb-t"))

    names = Names.of(settings)
    source = ray.get_actor(names.member_actor(0, 0), namespace=NAMESPACE)
    # Quiet only once the saga ends: the transfer's reply comes with its credit, and the
    # source's writer commits one more batch when the credit's confirmation reaches it.

    def saga_ended() -> bool:
        views: dict[str, Any] = ray.get(source.views.remote())
        return not views[accounts[0]].in_flight

    wait_until(saga_ended, 60, "the transfer's saga to end at its source")
    for p in range(settings.partitions):
        writer = ray.get_actor(names.member_actor(p, 0), namespace=NAMESPACE)
        standby = ray.get_actor(names.member_actor(p, 1), namespace=NAMESPACE)
        mine = ids[p]

        def caught_up(writer: Any = writer, standby: Any = standby, mine: Any = mine) -> bool:
            at = ray.get(writer.position.remote())  # quiet: the writer stays there
            return bool(
                ray.get(standby.position.remote()) == at
                and all(ray.get(standby.holds_ids.remote(mine)))
            )

        wait_until(caught_up, 60, f"partition {p}'s standby to reach its writer")
        assert ray.get(standby.views.remote()) == ray.get(writer.views.remote())
        assert ray.get(standby.position.remote()) == ray.get(writer.position.remote())
        stats = ray.get(standby.stats.remote())
        assert (stats.status, stats.member, stats.seq) == ("following", 1, stats.seq)
        assert stats.seq == ray.get(writer.stats.remote()).seq > 0
        absent = on_partition(settings, p, "nobody")
        batch = c.reads.read_batch([accounts[p], absent, accounts[p]])  # the HTTP GETs' way
        assert [(b.served_by, b.position) for b in batch] == [
            (ServedBy.STANDBY, ray.get(writer.position.remote()))
        ] * 3
        held = ray.get(writer.views.remote())[accounts[p]]
        assert [b.view for b in batch] == [held, None, held]
    balances = [ray.get(standby.views.remote()) for standby in wait_for_standbys(settings)]
    total = sum(views[a].balance for views in balances for a in accounts if a in views)
    assert total == 2 * sum(100 + i for i in range(5))  # money conserved, the transfer within

    coordinator = lookup_actor(names.coordinator_actor, NAMESPACE)
    assert coordinator is not None

    def lags_reported() -> bool:
        rows = ray.get(coordinator.status.remote()).rows
        return all(row.standby_lags == {1: 0} for row in rows)

    wait_until(lags_reported, 30, "the status to report each standby 0 commits behind")


def _pid(_actor: object) -> int:
    return os.getpid()


def test_read_your_writes_with_a_standby_behind(followed: Service) -> None:
    settings, c = followed.settings, followed.client
    account = on_partition(settings, 0, "ryw")
    assert c.execute(account, OpenAccount("EUR")).accepted
    opened = c.execute(account, Deposit(100))
    assert opened.accepted and opened.position is not None

    def from_a_standby() -> ViewAt | None:
        found = c.reads.read(account, min_version=opened.version)
        return found if found.served_by is ServedBy.STANDBY else None

    wait_until(from_a_standby, 60, "a standby to serve the account's reads")
    standby = ray.get_actor(Names.of(settings).member_actor(0, 1), namespace=NAMESPACE)
    pid: int = ray.get(standby.__ray_call__.remote(_pid), timeout=30)

    # (a) the standby is stopped across a deposit, then resumed while the read waits on it
    os.kill(pid, signal.SIGSTOP)
    try:
        deposit = c.execute(account, Deposit(30))
        assert deposit.accepted and deposit.position is not None
        answers: list[ViewAt] = []
        reader = threading.Thread(
            target=lambda: answers.append(c.reads.read(account, at_least=deposit.position))
        )
        reader.start()
        time.sleep(0.5)  # lets the read reach the stopped standby; what follows holds anyway
    finally:
        os.kill(pid, signal.SIGCONT)
    reader.join(60)
    [resumed] = answers
    assert resumed.served_by is ServedBy.STANDBY
    assert resumed.position.seq >= deposit.position.seq
    assert isinstance(resumed.view, AccountView) and resumed.view.balance == 130

    # (b) the standby stays stopped: the writer answers, with the deposit
    os.kill(pid, signal.SIGSTOP)
    try:
        second = c.execute(account, Deposit(20))
        assert second.accepted and second.position is not None
        stalled = c.reads.read(account, at_least=second.position)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stalled.served_by is ServedBy.WRITER
    assert stalled.position.seq >= second.position.seq
    assert isinstance(stalled.view, AccountView) and stalled.view.balance == 150

    writer = ray.get_actor(Names.of(settings).member_actor(0, 0), namespace=NAMESPACE)
    views = ray.get(writer.views.remote())
    assert views[account].balance == 150  # money conserved
