"""A client that keeps commands flowing while a test breaks things, and the checks after.

Every command has its own id and is retried with that id until it gets a reply, so a
command is never lost from the client's side; the checks then read the committed events and
the actors' state to prove that none was lost or applied twice and that money is conserved.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import ray

from actors.audit import fold_events, read_events, read_named_topic
from actors.client import LedgerClient
from actors.ray_state import partition_actor
from actors.retries import ReplyTimeoutError
from eventledger.workload import money_moved
from ledger.commands import Deposit, OpenAccount, Withdraw
from tests.integration.waiting import wait_until
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.envelopes import Reply
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicLayout

__all__ = ["Traffic", "assert_exactly_once_and_money_conserved", "installed_views"]

log = logging.getLogger(__name__)


class Traffic:
    """Opens ``accounts`` accounts, then sends deposits and withdrawals from a thread until
    stopped, each with a fresh id, retried with that id on timeout.

    Invariant: the thread runs until ``stop`` (or until an error ends it, kept in ``error``),
    never until a count of its own: a test waits on it (``wait_for``) after faults that take
    as long as they take, and commands must still be flowing then. ``wait_for`` fails at once,
    with the reason, when the thread has ended, rather than wait for replies that cannot
    come."""

    def __init__(self, client: LedgerClient, prefix: str, accounts: int = 12) -> None:
        self.client = client
        self.prefix = prefix
        self.accounts = [f"{prefix}-acct-{i}" for i in range(accounts)]
        self.sent: dict[str, tuple[str, Any]] = {}
        self.replies: dict[str, Reply] = {}
        self.reply_counts: Counter[str] = Counter()
        self.error: BaseException | None = None  # what ended the thread before `stop`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name="traffic", daemon=True)

    @property
    def count(self) -> int:
        return len(self.replies)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 180.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the traffic thread is stuck"
        assert self.error is None, f"the traffic thread failed: {self.error!r}"

    def wait_for(self, more: int, timeout: float = 120.0) -> None:
        """Wait until ``more`` further commands got their reply; fail at once if the traffic
        thread has ended (no further reply can come)."""
        target = self.count + more
        ended = self._thread.is_alive
        wait_until(lambda: self.count >= target or not ended(), timeout, f"{more} more replies")
        if self.count < target:
            raise AssertionError(
                f"the traffic thread ended after {self.count} replies "
                f"({'stopped' if self.error is None else repr(self.error)}): "
                f"{target - self.count} of the {more} awaited replies cannot come"
            )

    def _execute(self, command_id: str, account: str, command: Any) -> None:
        self.sent[command_id] = (account, command)
        while True:
            try:
                reply = self.client.execute(account, command, command_id=command_id, timeout=5)
            except ReplyTimeoutError:
                continue  # the same id again: deduplicated if it was processed
            self.replies[command_id] = reply
            self.reply_counts[command_id] += 1
            return

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as e:
            self.error = e
            log.exception("the traffic thread failed")

    def _run(self) -> None:
        for i, account in enumerate(self.accounts):
            self._execute(f"{self.prefix}-open-{i}", account, OpenAccount("EUR", 1_000))
        i = 0
        while not self._stop.is_set():
            account = self.accounts[i % len(self.accounts)]
            command = Deposit(10 + i % 7) if i % 3 else Withdraw(25)
            self._execute(f"{self.prefix}-cmd-{i}", account, command)
            i += 1


def installed_views(settings: Settings) -> dict[str, Any]:
    """Every aggregate's view held by the partitions' writers, once each writer has installed
    every batch committed so far (its position has reached the last checkpoint on its live
    snapshot generation's partition). A writer installs a batch after its commit, so the
    replies of a batch can reach a client before the views show it: reading right after the
    replies races."""
    handles = [partition_actor(settings.app_id, p) for p in range(settings.partitions)]
    layout = TopicLayout.of(settings)
    committed = {p: 0 for p in range(settings.partitions)}
    for p, stats in enumerate(ray.get([h.stats.remote() for h in handles], timeout=60)):
        for msg in read_named_topic(settings, layout.snapshots(stats.generation), [p]):
            if msg.key() == CHECKPOINT_KEY:
                committed[p] = decode_checkpoint(msg.value()).seq

    def installed() -> bool:
        at = ray.get([h.position.remote() for h in handles], timeout=60)
        return all(a.seq >= committed[a.partition] for a in at)

    wait_until(installed, 60, "the writers to install every committed batch")
    views: dict[str, Any] = {}
    for part in ray.get([h.views.remote() for h in handles], timeout=60):
        views.update(part)
    return views


def assert_exactly_once_and_money_conserved(
    settings: Settings, traffics: Sequence[Traffic], aggregate: AnyAggregate
) -> dict[str, Any]:
    """For ``traffics``, every traffic the service has had: every command got exactly one
    reply; the events hold each accepted command exactly once and no other; the actors'
    balances = the folded events' = the accepted moves'. Returns the fold of the events
    (aggregate id → state)."""
    for traffic in traffics:
        assert set(traffic.replies) == set(traffic.sent), f"{traffic.prefix}: every reply"
        assert all(n == 1 for n in traffic.reply_counts.values())
    sent = {cid: sent for t in traffics for cid, sent in t.sent.items()}
    accepted = {cid for t in traffics for cid, r in t.replies.items() if r.accepted}
    events = list(read_events(settings, aggregate))
    by_command = Counter(e.envelope.command_id for e in events)
    prefixes = tuple(t.prefix for t in traffics)
    ours = {cid for cid in by_command if cid.startswith(prefixes)}
    assert ours == accepted, "the events hold exactly the accepted commands"
    assert all(by_command[cid] == 1 for cid in accepted), "each accepted command once"
    for account in (a for t in traffics for a in t.accounts):
        sequences = [e.envelope.sequence for e in events if e.envelope.aggregate_id == account]
        assert sequences == list(range(1, len(sequences) + 1)), f"{account}: no gaps"
    expected = sum(money_moved(sent[cid][1]) for cid in accepted)
    views = installed_views(settings)
    folded = fold_events(settings, aggregate)
    assert sum(v.balance for v in views.values()) == expected
    assert sum(s.balance for s in folded.values()) == expected
    versions = Counter(e.envelope.aggregate_id for e in events)  # one per event applied
    assert {k: (v.balance, v.version) for k, v in views.items()} == {
        k: (s.balance, versions[k]) for k, s in folded.items()
    }
    return folded
