"""History and point-in-time queries against the real broker and Ray: committed events only,
read your writes, with no partition actor alive, after a rebuild switch, and deep into a
history (from a waypoint) as from its first event.

The tests that break no actor run on the session's shared service (``SharedServices``), each
on accounts of its own (the rebuild, which switches every partition, after every other test
on it); the two that kill actors on the shared one without a coordinator (the one that
leaves none alive after every other test on it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
import ray

from actors.deployment import find_coordinator
from actors.history import HistoryIndex
from actors.ray_state import partition_actor
from ledger import LEDGER
from ledger.commands import Deposit, OpenAccount, Withdraw
from ledger.state import AccountView
from tests.integration.conftest import Service, SharedServices
from tests.integration.waiting import wait_until
from topology.control import RebuildPhase
from topology.history import MAX_PAGE, WAYPOINT_EVERY, HistoryPage

MOVES = {"alice": [Deposit(500), Withdraw(120), Deposit(7)], "bob": [Deposit(90), Withdraw(40)]}


@pytest.fixture
def service(shared: SharedServices) -> Service:
    """The shared service: each test moves accounts of its own (``_move``'s tag), and
    ``deep``."""
    return shared.supervised()


@pytest.fixture
def bare_service(shared: SharedServices) -> Service:
    """The shared service without a coordinator, for the tests that kill actors."""
    return shared.bare()


def _moves(account: str) -> list[Deposit | Withdraw]:
    """The moves of ``account`` (``alice-{tag}`` moves as MOVES' alice)."""
    return MOVES[account.split("-", maxsplit=1)[0]]


def _move(service: Service, tag: str) -> dict[str, int]:
    """Open and move the accounts of MOVES, ``alice-{tag}`` and ``bob-{tag}``; their
    expected balances."""
    client = service.client
    accounts = [f"{name}-{tag}" for name in MOVES]
    for account in accounts:
        assert client.execute(account, OpenAccount("EUR"), command_id=f"open-{account}").accepted
        for n, move in enumerate(_moves(account)):
            assert client.execute(account, move, command_id=f"{account}-{n}").accepted
    bob = accounts[1]
    assert not client.execute(bob, Withdraw(10**6), command_id=f"{bob}-refused").accepted
    return {
        a: sum(m.amount if isinstance(m, Deposit) else -m.amount for m in _moves(a))
        for a in accounts
    }


def _all(service: Service, account: str, limit: int) -> HistoryPage[AccountView]:
    pages, after = [], 0
    while True:
        page = service.client.reads.history(account, after_version=after, limit=limit)
        pages.append(page)
        if page.next_after is None:
            return HistoryPage(
                aggregate_id=account,
                entries=[e for p in pages for e in p.entries],
                next_after=None,
            )
        after = page.next_after


def _check(service: Service, expected: dict[str, int]) -> None:
    for account, balance in expected.items():
        page = _all(service, account, limit=2)
        ids = [e.command_id for e in page.entries]
        assert ids == [f"open-{account}"] + [f"{account}-{n}" for n in range(len(_moves(account)))]
        assert [e.sequence for e in page.entries] == list(range(1, len(ids) + 1))
        assert page.entries[-1].view.balance == balance
        assert page.entries[-1].view == service.client.reads.state_at(account, len(ids)).view
    # money conserved: the histories' last balances are the accounts' and the moves' sum
    views = [service.client.reads.view(a) for a in expected]
    assert sum(v.balance for v in views if v) == sum(expected.values())


def test_history_pages_and_points_in_time(service: Service) -> None:
    expected = _move(service, "pages")
    _check(service, expected)
    client = service.client
    entries = client.reads.history("alice-pages").entries
    middle = entries[2]
    at = client.reads.state_at(
        "alice-pages", datetime.fromtimestamp(middle.timestamp_ms / 1000, UTC)
    )
    assert (
        at is not None
        and at.version >= 3
        and at.view.balance == entries[at.version - 1].view.balance
    )
    before = datetime.fromtimestamp((entries[0].timestamp_ms - 1) / 1000, UTC)
    assert client.reads.state_at("alice-pages", before) is None
    assert (
        client.reads.state_at("nobody", 1) is None and client.reads.history("nobody").entries == []
    )
    with pytest.raises(ValueError):
        client.reads.history("alice-pages", limit=0)


def test_history_answers_while_the_partition_actors_restart(bare_service: Service) -> None:
    expected = _move(bare_service, "restart")
    handles = [partition_actor(bare_service.settings.app_id, p) for p in range(2)]
    for handle in handles:
        ray.kill(handle, no_restart=False)  # Ray restarts it: the constructor restores
    _check_history_only(bare_service, expected)  # asked at once, not waiting for them
    assert ray.get([h.ready.remote() for h in handles], timeout=120) == ["running"] * 2
    assert bare_service.client.execute("bob-restart", Deposit(1), command_id="after").accepted
    assert (
        bare_service.client.reads.history("bob-restart").entries[-1].view.balance
        == expected["bob-restart"] + 1
    )


@pytest.mark.shared_last  # leaves no partition actor alive
def test_history_answers_with_no_partition_actor_alive(bare_service: Service) -> None:
    expected = _move(bare_service, "gone")
    for p in range(bare_service.settings.partitions):
        ray.kill(partition_actor(bare_service.settings.app_id, p), no_restart=True)
    _check_history_only(bare_service, expected)


def _check_history_only(service: Service, expected: dict[str, int]) -> None:
    for account, balance in expected.items():
        page = service.client.reads.history(account)
        assert page.entries[-1].view.balance == balance
        assert len(page.entries) == 1 + len(_moves(account))
    assert sum(service.client.reads.history(a).entries[-1].view.balance for a in expected) == sum(
        expected.values()
    )


def test_an_index_on_a_new_disk_is_rebuilt_from_the_events(
    service: Service, tmp_path: Path
) -> None:
    expected = _move(service, "disk")
    settings = dataclasses.replace(service.settings, state_dir=str(tmp_path))
    for p in range(settings.partitions):
        index = HistoryIndex(settings, p, LEDGER)
        try:
            for account, balance in expected.items():
                if service.client.partition_of(account) == p:
                    assert index.history(account).entries[-1].view.balance == balance
        finally:
            index.stop()


def test_transfers_in_the_history_of_both_accounts(service: Service) -> None:
    expected = _move(service, "transfers")
    client = service.client
    alice, bob = expected
    assert client.transfer(alice, bob, 100, transfer_id="t-plain").accepted  # type: ignore[attr-defined]
    assert client.transfer(alice, bob, 10, transfer_id="t-pending", pending=True).accepted  # type: ignore[attr-defined]
    for account in expected:
        last = client.reads.history(account, limit=1_000).entries[-1]
        assert last.view == client.reads.view(account)  # the history ends where the account is
        assert client.reads.state_at(account, last.sequence).view == last.view  # type: ignore[union-attr]
    views = [client.reads.view(a) for a in expected]
    # money: transfers moved it, none was made; the pending 10 is reserved, not moved yet
    assert sum(v.balance for v in views if v) == sum(expected.values())
    assert [v.pending_debits for v in views if v] == [10, 0]


def test_a_page_deep_into_a_long_history_is_the_page_a_full_fold_gives(
    service: Service,
) -> None:
    """Pages and points past the first waypoints (folded from a waypoint) equal the full
    fold from the first event, and the balances the deposits add up to."""
    client = service.client
    deposits = list(range(1, 3 * WAYPOINT_EVERY + 52))
    assert client.execute("deep", OpenAccount("EUR"), command_id="open-deep").accepted
    sent = [client.send("deep", Deposit(d), command_id=f"deep-{d}") for d in deposits]
    assert all(f.result(timeout=120).accepted for f in sent)
    events = 1 + len(deposits)
    full = client.reads.history("deep", limit=MAX_PAGE).entries  # after 0: from the first
    assert [e.sequence for e in full] == list(range(1, events + 1))
    assert [e.view.balance for e in full] == [0] + [sum(deposits[:n]) for n in range(1, events)]
    for after, limit in ((2 * WAYPOINT_EVERY + 7, 40), (WAYPOINT_EVERY, 1), (events - 3, 100)):
        page = client.reads.history("deep", after_version=after, limit=limit)
        assert page.entries == full[after : after + limit]
    for version in (WAYPOINT_EVERY, WAYPOINT_EVERY + 1, 3 * WAYPOINT_EVERY + 9, events):
        point = client.reads.state_at("deep", version)
        assert point is not None and point.view == full[version - 1].view
        at = datetime.fromtimestamp(full[version - 1].timestamp_ms / 1000, UTC)
        by_time = client.reads.state_at("deep", at)
        assert by_time is not None and by_time.view == full[by_time.version - 1].view
        assert by_time.version >= version  # the last event of that millisecond
        assert by_time.timestamp_ms == full[version - 1].timestamp_ms
    # money: the account holds what was deposited
    assert client.reads.view("deep").balance == sum(deposits)  # type: ignore[union-attr]


@pytest.mark.shared_last  # switches every partition to a new generation
def test_history_after_a_rebuild_switch_and_read_your_writes(service: Service) -> None:
    expected = _move(service, "rebuild")
    coordinator = find_coordinator(service.settings.app_id)
    assert ray.get(coordinator.rebuild.remote(None)) == [0, 1]
    wait_until(
        lambda: all(
            r.phase is RebuildPhase.DONE
            for r in ray.get(coordinator.rebuild_progress.remote()).values()
        ),
        120,
        "the rebuild to switch",
    )
    _check(service, expected)
    # a deposit after the switch is in the history as soon as its reply came
    assert service.client.execute("alice-rebuild", Deposit(3), command_id="after").accepted
    last = service.client.reads.history(
        "alice-rebuild", after_version=len(MOVES["alice"]) + 1
    ).entries
    assert [e.command_id for e in last] == ["after"]
    assert last[0].view.balance == expected["alice-rebuild"] + 3
