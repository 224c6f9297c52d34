"""Failover without standbys: how long a partition gives no answer when its actor's process
is killed (the ``failover`` phase of ``python -m bench``; the baseline of issue 22).

A one-partition application holds ``failover_keys`` accounts and ``failover_ids``
remembered ids, written as the restore phase writes them (the real codec, a plain
producer). Once its actor has restored, one ``LedgerClient`` sends deposits of 1 to those
accounts, open loop at ``failover_rate`` per second (each sent at its scheduled time,
whatever the replies do). After ``warmup`` seconds the actor's process gets SIGKILL (its pid
asked of the actor through Ray, as the fault suite's ``kill`` does); Ray restarts it, and
its constructor fences, restores the snapshots and reopens the id memory (reused: same
node, same disk). The load goes on until ``warmup`` seconds after the first reply that
follows the restart; then every deposit must have been answered and accepted, and every
touched account's balance must be its restored balance plus its deposits (none lost, none
applied twice).

Figures, on the bench's monotonic clock: the **answer gap**, the longest silence between two
replies from the last reply received before the kill to the first received after the new
process answered a Ray call (its constructor has then finished), as the fault suite
measures it (``eventledger.torture.gap``: replies of a batch committed just before the kill
may arrive after it); the kill to the reply that ends that silence; the kill to the first
Ray call the new process answers; and the restart's own restore times from its
``stats()``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import ray

from actors.admin import ensure_topics
from actors.client import LedgerClient
from actors.deployment import stop_service
from actors.messages import PartitionStats
from actors.ray_state import partition_actor
from actors.reads import Reads
from bench.check import CheckFailedError
from bench.model import Failover, RunContext
from bench.restore import account_id, balance_of, one_partition, write_ids, write_snapshots
from eventledger.assembly import deploy_service
from eventledger.torture.gap import longest_silence
from ledger.commands import Deposit
from ledger.state import AccountView
from topology.envelopes import Reply
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["run_failover"]

log = logging.getLogger(__name__)

_BACK_TIMEOUT = 900.0  # seconds for the replacement to answer (a 1M-account restore: ~10 s)


def _pid(_actor: Any) -> int:
    """Run inside an actor by ``__ray_call__``: the process id of its worker."""
    return os.getpid()


@dataclass
class _Sent:
    account: int
    future: Future[Reply]
    replied: float | None = None

    def replied_now(self, _future: Future[Reply]) -> None:
        self.replied = time.monotonic()


class _Load:
    """Deposits of 1, open loop at ``rate`` per second, from a thread, until ``stop``."""

    def __init__(self, client: LedgerClient, keys: int, rate: float) -> None:
        self.client, self.keys, self.rate = client, keys, rate
        self.sent: list[_Sent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failover-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def reply_times(self) -> list[float]:
        return [s.replied for s in list(self.sent) if s.replied is not None]

    def _run(self) -> None:
        start, n = time.monotonic(), 0
        while not self._stop.is_set():
            wait = start + n / self.rate - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            i = (n * 7_919) % self.keys  # spread over the accounts, each touched rarely
            sent = _Sent(i, self.client.send(account_id(i), Deposit(1)))
            sent.future.add_done_callback(sent.replied_now)
            self.sent.append(sent)
            n += 1


def run_failover(ctx: RunContext) -> Failover:
    cfg = ctx.config
    keys, ids = cfg.failover_keys, cfg.failover_ids
    settings = one_partition(ctx, "failover")
    layout = TopicLayout(settings.app_id, 1)
    ensure_topics(ctx.bootstrap, layout)
    write_snapshots(ctx, layout.name(TopicKind.SNAPSHOTS), keys)
    write_ids(ctx, layout.name(TopicKind.REPLIES), keys, ids)
    with ctx.console.status(f"eventledger: an actor restoring {keys:,} accounts, {ids:,} ids..."):
        deploy_service(settings, timeout=3_600)
    try:
        first: PartitionStats = ray.get(
            partition_actor(settings.app_id, 0).stats.remote(), timeout=60
        )
        with LedgerClient(settings, timeout=60) as client:
            load = _Load(client, keys, cfg.failover_rate)
            load.start()
            try:
                killed, back = _kill_and_wait(ctx, settings.app_id, load, cfg.warmup)
            finally:
                load.stop()
            replies = [s.future.result(120) for s in load.sent]
        stats: PartitionStats = ray.get(
            partition_actor(settings.app_id, 0).stats.remote(), timeout=60
        )
        balances = _check(settings, load.sent, replies)
    finally:
        stop_service(settings.app_id)
    before, after = longest_silence(load.reply_times(), killed, back)
    if before is None or after is None:
        raise CheckFailedError(f"no reply before or after the kill ({before}, {after})")
    return Failover(
        keys=keys,
        ids=ids,
        rate=cfg.failover_rate,
        gap_seconds=after - before,
        kill_to_reply_seconds=after - killed,
        kill_to_actor_seconds=back - killed,
        restore_seconds=stats.restore_seconds,
        restored_records=stats.restored_records,
        ids_restore_seconds=stats.ids_restore_seconds,
        ids_restored=stats.ids_restored,
        facts={
            "deposits sent (all answered, accepted)": len(replies),
            "accounts checked (restored balance + deposits)": balances,
            "first start: restore seconds": first.restore_seconds,
            "first start: ids restore seconds (a new disk)": first.ids_restore_seconds,
            "first start: ids restored": first.ids_restored,
            "aggregates after the restart": stats.aggregates,
        },
    )


def _kill_and_wait(ctx: RunContext, app_id: str, load: _Load, warmup: float) -> tuple[float, float]:
    """SIGKILL the actor's process after ``warmup`` s of load; wait until the new process
    answers Ray and ``warmup`` s have passed since the first reply after that. Returns
    (killed at, new process answered at)."""
    time.sleep(warmup)
    pid: int = ray.get(partition_actor(app_id, 0).__ray_call__.remote(_pid), timeout=30)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    deadline = killed + _BACK_TIMEOUT
    back: float | None = None
    with ctx.console.status(f"eventledger: partition actor (pid {pid}) killed, waiting..."):
        while time.monotonic() < deadline:
            if back is None:
                back = _answered_from_another(app_id, pid)
            if back is not None:
                after = longest_silence(load.reply_times(), killed, back)[1]
                if after is not None and time.monotonic() > after + warmup:
                    return killed, back
            time.sleep(0.05)
    raise CheckFailedError(f"no answer within {_BACK_TIMEOUT:.0f} s of the kill")


def _answered_from_another(app_id: str, pid: int) -> float | None:
    """The time the partition's actor answered from a process other than ``pid``, or None."""
    try:
        answered: int = ray.get(partition_actor(app_id, 0).__ray_call__.remote(_pid), timeout=1)
    except Exception as e:  # restarting, or its name not yet registered again
        log.debug("failover: waiting for the restart: %s", e)
        return None
    return time.monotonic() if answered != pid else None


def _check(settings: Settings, sent: list[_Sent], replies: list[Reply]) -> int:
    """Every deposit accepted; each touched account holds its restored balance plus its
    deposits. Returns the accounts checked."""
    refused = [r for r in replies if not r.accepted]
    if refused:
        raise CheckFailedError(f"{len(refused)} deposits refused, e.g. {refused[0]}")
    deposits: dict[int, int] = {}
    for s in sent:
        deposits[s.account] = deposits.get(s.account, 0) + 1
    reads = Reads(settings, AccountView)
    for i, n in deposits.items():
        view = reads.view(account_id(i))
        want = balance_of(i) + n
        if view is None or view.balance != want:
            got = None if view is None else view.balance
            raise CheckFailedError(f"{account_id(i)}: balance {got}, expected {want}")
    return len(deposits)
