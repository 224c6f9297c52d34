"""Transfers on the real broker and Ray: same partition (one transaction) and across
partitions (a saga through the internal topic), refusals that reverse the debit, a forged
internal command refused, retries answered with the same final reply, two-phase transfers
(post, partial post, void, expiry on the partition's clock), transfers while partition
actors are killed; money conserved every time.

The tests run on the session's shared services (``SharedServices``), each on accounts of its
own and checking the events of those accounts; the one that kills actors (Ray restarts them)
on the shared one without a coordinator."""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from functools import partial

import pytest
import ray

from actors.audit import read_events
from actors.ray_state import partition_actor
from eventledger.bank import BankClient
from ledger import (
    LEDGER,
    AccountView,
    CloseAccount,
    Deposit,
    Deposited,
    Money,
    OpenAccount,
    TransferCredited,
    TransferDebited,
    TransferReversed,
    Withdrawn,
)
from ledger.internal import CreditTransfer
from topology.codes import FlowCode
from topology.envelopes import Reply
from topology.partitioner import partition_for
from topology.settings import Settings

from .conftest import Service, SharedServices
from .waiting import wait_until


@pytest.fixture
def service(shared: SharedServices) -> Service:
    """The shared service: a-*, b-*, usd-*, closed-*, ghost-*, src-*, dst-*."""
    return shared.supervised()


@pytest.fixture
def bare_service(shared: SharedServices) -> Service:
    """The shared service without a coordinator: k0-* to k2-*."""
    return shared.bare()


def on_partition(settings: Settings, partition: int, prefix: str) -> str:
    """An account id that lives on `partition`."""
    for n in itertools.count():
        name = f"{prefix}-{n}"
        if partition_for(name.encode(), settings.partitions) == partition:
            return name
    raise AssertionError("unreachable")


def funded(client: BankClient, account: str, amount: int, currency: str = "EUR") -> None:
    assert client.execute(account, OpenAccount(currency)).accepted
    if amount:
        assert client.execute(account, Deposit(amount)).accepted


def _view(client: BankClient, account: str) -> AccountView:
    view = client.reads.view(account)
    assert view is not None
    return view


def balance(client: BankClient, account: str) -> int:
    return _view(client, account).balance


def assert_money_conserved(service: Service, accounts: list[str]) -> Counter[str]:
    """Σ balances = Σ deposits − Σ withdrawals of ``accounts`` once quiet (nothing in
    flight), from their committed events; returns the count of their transfer events by
    type. ``accounts`` are every account the test's money moved between."""
    deposits = withdrawals = 0
    kinds: Counter[str] = Counter()
    mine = set(accounts)
    for e in read_events(service.settings, LEDGER):
        if e.envelope.aggregate_id not in mine:
            continue
        if isinstance(e.event, Deposited):
            deposits += e.event.amount
        elif isinstance(e.event, Withdrawn):
            withdrawals += e.event.amount
        else:
            kinds[type(e.event).__name__] += 1
    total = sum(balance(service.client, a) for a in accounts)
    assert total == deposits - withdrawals
    return kinds


def test_same_and_cross_partition_transfers_refusals_and_retries(service: Service) -> None:
    c, s = service.client, service.settings
    a0, b0 = on_partition(s, 0, "a"), on_partition(s, 0, "b")
    a1, usd1 = on_partition(s, 1, "a"), on_partition(s, 1, "usd")
    closed1 = on_partition(s, 1, "closed")
    funded(c, a0, 1_000)
    funded(c, b0, 0)
    funded(c, a1, 0)
    funded(c, usd1, 0, "USD")
    funded(c, closed1, 0)
    assert c.execute(closed1, CloseAccount()).accepted

    same = c.transfer(a0, b0, 100, transfer_id="same-1")
    assert (same.accepted, same.command_id, same.aggregate_id) == (True, "same-1", a0)
    cross = c.transfer(a0, a1, 250, transfer_id="cross-1")
    assert (cross.accepted, cross.aggregate_id) == (True, a0)
    assert (balance(c, a0), balance(c, b0), balance(c, a1)) == (650, 100, 250)

    for target, code in (
        (on_partition(s, 1, "ghost"), "unknown_account"),
        (closed1, "account_closed"),
        (usd1, "currency_mismatch"),
        (on_partition(s, 0, "ghost"), "unknown_account"),
    ):
        refused = c.transfer(a0, target, 10, transfer_id=f"to-{target}")
        assert (refused.accepted, refused.code) == (False, code), target
        assert balance(c, a0) == 650, "the debit was reversed before the reply"

    again = c.transfer(a0, a1, 250, transfer_id="cross-1")
    assert again == cross, "a retry gets the same final reply"
    refused_again = c.transfer(a0, closed1, 10, transfer_id=f"to-{closed1}")
    assert (refused_again.accepted, refused_again.code) == (False, "account_closed")
    assert c.transfer(a0, a1, 10**6).code == "insufficient_funds"

    forged = c.execute(a1, CreditTransfer("x", a0, 500, "EUR"))
    assert (forged.accepted, forged.code) == (False, FlowCode.FORGED_INTERNAL_COMMAND)
    assert balance(c, a1) == 250

    accounts = [a0, b0, a1, usd1, closed1]
    kinds = assert_money_conserved(service, accounts)
    assert kinds[TransferDebited.__name__] == 6
    assert kinds[TransferCredited.__name__] == 2
    assert kinds[TransferReversed.__name__] == 4


def test_pending_post_partial_void_and_expiry(service: Service) -> None:
    c, s = service.client, service.settings
    src, dst = on_partition(s, 0, "src"), on_partition(s, 1, "dst")
    funded(c, src, 1_000)
    funded(c, dst, 0)

    held = c.transfer(src, dst, 300, transfer_id="p-1", pending=True)
    assert held.accepted
    view = c.reads.view(src)
    assert view is not None
    assert (view.balance, view.pending_debits, view.available) == (1000, 300, 700)
    target = c.reads.view(dst)
    assert target is not None and (target.balance, target.pending_credits) == (0, 300)
    assert c.transfer(src, dst, 800).code == "insufficient_funds"

    posted = c.post_pending("p-1", source=src, amount=200)
    assert posted.accepted
    assert c.void_pending("p-1", source=src).code == "unknown_pending", "never two outcomes"

    assert c.transfer(src, dst, 100, transfer_id="p-2", pending=True).accepted
    assert c.void_pending("p-2", source=src).accepted
    assert c.post_pending("p-2", source=src).code == "unknown_pending"

    assert c.transfer(
        src, dst, 50, transfer_id="p-3", pending=True, pending_timeout_ms=300
    ).accepted
    wait_until(  # no traffic: the partition's tick expires it
        lambda: not _view(c, src).pending_debits, 60, "the hold expired"
    )
    assert c.post_pending("p-3", source=src).code == "pending_expired"  # told why
    wait_until(
        lambda: not _view(c, dst).pending_credits,
        60,
        "the release to reach the target's partition",
    )

    src_view, dst_view = _view(c, src), _view(c, dst)
    assert (src_view.balance, src_view.pending_debits) == (800, 0)
    assert (dst_view.balance, dst_view.pending_credits) == (200, 0)
    kinds = assert_money_conserved(service, [src, dst])
    assert kinds["PendingVoided"] == 2 and kinds["PendingPosted"] == 1
    assert kinds["PendingCreditSettled"] == 1 and kinds["PendingCreditReleased"] == 2


@pytest.mark.slow  # 11 s: the fault suite's short form kills actors under transfers by default
def test_cross_partition_transfers_under_actor_kills(bare_service: Service) -> None:
    c, s = bare_service.client, bare_service.settings
    accounts = [on_partition(s, p, f"k{i}") for p in (0, 1) for i in range(3)]
    for account in accounts:
        funded(c, account, 10_000)
    rng = random.Random(11)
    plan = [(f"kt-{n}", *rng.sample(accounts, 2), rng.randrange(1, 3_000)) for n in range(90)]
    replies: dict[str, Reply] = {}

    def send(part: list[tuple[str, str, str, int]]) -> None:
        for transfer_id, source, target, amount in part:
            replies[transfer_id] = c.transfer(
                source, target, amount, transfer_id=transfer_id, timeout=120
            )

    senders = [threading.Thread(target=send, args=(plan[i::3],)) for i in range(3)]
    for t in senders:
        t.start()

    def replied(count: int) -> bool:
        return len(replies) >= count or not any(t.is_alive() for t in senders)

    for n, partition in enumerate((1, 0, 1)):
        count = 20 * (n + 1)
        wait_until(partial(replied, count), 300, f"{count} replies", interval=0.05)
        ray.kill(partition_actor(s.app_id, partition), no_restart=False)  # Ray restarts it
    for t in senders:
        t.join(300)
    assert len(replies) == len(plan), "every transfer got its one final reply"

    mine = set(accounts)

    def landed() -> Money | None:  # the last legs may still be on their way
        money = Money()
        money.add(e.event for e in read_events(s, LEDGER) if e.envelope.aggregate_id in mine)
        return money if money.in_flight == 0 else None

    money = wait_until(landed, 60, "every leg landed", interval=0.5)
    assert money.broken_transfers() == []
    for transfer_id, reply in replies.items():
        legs = money.legs.get(transfer_id, [])
        assert reply.accepted == ("TransferCredited" in legs), (transfer_id, reply, legs)
        assert legs.count("TransferDebited") == (1 if reply.accepted or legs else 0)
    assert sum(balance(c, a) for a in accounts) == money.expected_total == 60_000
