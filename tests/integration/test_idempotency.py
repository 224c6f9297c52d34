"""Exactly once as a client sees it, on the real broker and Ray: a command id is executed at
most once inside its window, whatever else happens to the account, across restarts and a new
disk; replies never cross between clients; a reused id and an expired retry are refused."""

from __future__ import annotations

import shutil
import threading
from collections import Counter

import pytest
import ray

from actors.admin import ensure_topics
from actors.audit import read_events
from actors.channel import now_ms
from actors.client import LedgerClient
from actors.partition import PartitionWorker
from actors.ray_state import partition_actor
from ledger import LEDGER, Deposit, OpenAccount, Withdraw
from ledger.state import AccountView
from topology.codes import IdCode
from topology.names import Names
from topology.settings import Settings
from topology.topics import TopicLayout

from .conftest import Service, SharedServices
from .waiting import wait_until


@pytest.fixture
def service(shared: SharedServices) -> Service:
    """The shared service: each test here has accounts of its own (iris and igor, ilse,
    busy, stalled) and checks only their events and views; the two that kill an actor run
    after every other test on it."""
    return shared.supervised()


def _events_of(settings: Settings, account: str) -> Counter[str]:
    return Counter(
        e.envelope.command_id
        for e in read_events(settings, LEDGER)
        if e.envelope.aggregate_id == account
    )


def test_replies_to_the_same_id_on_two_accounts_never_cross(service: Service) -> None:
    settings = service.settings
    with LedgerClient(settings, reply_lane=0) as a, LedgerClient(settings, reply_lane=0) as b:
        assert a.execute("iris", OpenAccount("EUR")).accepted
        assert b.execute("igor", OpenAccount("EUR")).accepted
        for round_ in range(20):
            cid = f"dep-{round_}"
            to_iris = a.send("iris", Deposit(100), command_id=cid)
            to_igor = b.send("igor", Withdraw(1_000_000), command_id=cid)
            iris, igor = to_iris.result(60), to_igor.result(60)
            assert (iris.aggregate_id, iris.accepted) == ("iris", True)
            assert (igor.aggregate_id, igor.code) == ("igor", "insufficient_funds")
        assert service.client.reads.view("iris").balance == 2000  # type: ignore[union-attr]


def test_an_id_reused_for_another_command_is_refused_with_no_effect(service: Service) -> None:
    c = service.client
    assert c.execute("ilse", OpenAccount("EUR")).accepted
    assert c.execute("ilse", Deposit(5), command_id="dep-1").accepted
    reused = c.execute("ilse", Deposit(999), command_id="dep-1")
    assert (reused.accepted, reused.code) == (False, IdCode.ID_REUSED)
    assert c.reads.view("ilse").balance == 5  # type: ignore[union-attr]
    assert c.execute("ilse", Deposit(5), command_id="dep-1").accepted  # the original again
    assert _events_of(service.settings, "ilse")["dep-1"] == 1


@pytest.mark.slow  # the fault suite's short form checks retries across kills by default
@pytest.mark.shared_last  # kills an actor twice
def test_a_retry_after_a_busy_period_and_restarts_is_still_a_duplicate(
    service: Service, state_dir: str
) -> None:
    c = service.client
    settings = service.settings
    account = "busy"
    assert c.execute(account, OpenAccount("EUR")).accepted
    first = c.execute(account, Withdraw(50), command_id="early-refusal")
    assert first.code == "insufficient_funds"
    original = c.execute(account, Deposit(7), command_id="original")
    futures = [c.send(account, Deposit(1)) for _ in range(300)]  # far more than any cache
    assert all(f.result(60).accepted for f in futures)

    partition = c.partition_of(account)
    actor = partition_actor(settings.app_id, partition)
    ray.kill(actor, no_restart=False)  # restarts on the same disk: the store is reused
    assert c.execute(account, Deposit(7), command_id="original", timeout=60) == original
    assert c.execute(account, Withdraw(50), command_id="early-refusal") == first

    ray.kill(actor, no_restart=False)  # a new disk: restored from the changelog
    shutil.rmtree(Names.of(settings).ids_dir(settings, partition), ignore_errors=True)
    assert c.execute(account, Deposit(7), command_id="original", timeout=60) == original
    assert c.execute(account, Withdraw(50), command_id="early-refusal") == first
    stats = ray.get(partition_actor(settings.app_id, partition).stats.remote())
    assert stats.ids_restored >= 300  # read from the changelog, not from the events

    counts = _events_of(settings, account)
    assert counts["original"] == 1 and counts["early-refusal"] == 0
    assert c.reads.view(account).balance == 7 + 300  # type: ignore[union-attr]


@pytest.mark.shared_last  # kills an actor
def test_the_client_retries_the_same_id_through_a_stalled_actor(service: Service) -> None:
    """A short first timeout: the client re-sends while the actor is restarting."""
    settings = service.settings
    account = "stalled"
    with LedgerClient(settings, retry_interval=0.2) as c:
        assert c.execute(account, OpenAccount("EUR")).accepted
        actor = partition_actor(settings.app_id, c.partition_of(account))
        replies = []

        def send() -> None:
            for i in range(40):
                replies.append(c.execute(account, Deposit(1), command_id=f"s-{i}", timeout=90))

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: len(replies) >= 3, 60, "the sender under way")  # killed mid-way
        ray.kill(actor, no_restart=False)
        sender.join(180)
        assert len(replies) == 40 and all(r.accepted for r in replies)
    counts = _events_of(settings, account)
    assert all(counts[f"s-{i}"] == 1 for i in range(40))
    assert service.client.reads.view(account).balance == 40  # type: ignore[union-attr]


class SteppedClock:
    """The wall clock (epoch milliseconds) plus the steps a test takes: a partition on it
    is past its window as soon as the test says so."""

    def __init__(self) -> None:
        self.ahead_ms = 0

    def step(self, ms: int) -> None:
        self.ahead_ms += ms

    def __call__(self) -> int:
        return now_ms() + self.ahead_ms


def test_a_retry_past_the_window_is_expired_never_executed_again(
    bootstrap: str, app_id: str, state_dir: str
) -> None:
    """The partition runs in this process, on a clock the test steps past the (default)
    window: no waiting for it to pass."""
    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=1, state_dir=state_dir, environ={}
    )
    ensure_topics(settings, TopicLayout.of(settings))
    clock = SteppedClock()
    worker = PartitionWorker(settings, 0, LEDGER, clock=clock)
    try:
        with LedgerClient(settings, timeout=60) as c:
            assert c.execute("dave", OpenAccount("EUR")).accepted
            first = now_ms()
            done = c.execute("dave", Deposit(10), command_id="d-1", first_attempt_ms=first)
            assert done.accepted
            clock.step(settings.idempotency_window_ms + 1)
            again = c.execute("dave", Deposit(10), command_id="d-1", first_attempt_ms=first)
            assert (again.accepted, again.code) == (False, IdCode.EXPIRED)
            never_seen = c.execute("dave", Deposit(10), command_id="d-2", first_attempt_ms=first)
            assert never_seen.code == IdCode.EXPIRED
        view = worker.get("dave")
        assert isinstance(view, AccountView) and view.balance == 10
    finally:
        worker.stop()
    assert _events_of(settings, "dave")["d-1"] == 1
