"""Failover: how long a partition gives no answer when its writer's process is killed, without
and with a standby (the ``failover`` phase of ``python -m bench``; issue 22's goal: at most
1 s with one).

Each variant is its own one-partition application holding ``failover_keys`` accounts and
``failover_ids`` remembered ids, written as the restore phase writes them (the real codec, a
plain producer), with ``standbys`` 0 or 1 (on one Ray node the standby runs on the same
node). Once its writer has restored (and, with a standby, once the coordinator saw the
standby FOLLOWING), one ``LedgerClient`` sends deposits of 1 to those accounts, open loop at
``failover_rate`` per second (each sent at its scheduled time, whatever the replies do).
After ``warmup`` seconds, and once the standby's commit sequence is within ``_CAUGHT_UP``
commits of the writer's in the coordinator's status, the writer's process gets SIGKILL (its
pid asked of the actor through Ray, as the fault suite's ``kill`` does).

- ``standbys=0``: Ray restarts the actor in place; its constructor fences, restores the
  snapshots and reopens the id memory (reused: same node, same disk).
- ``standbys=1``: the coordinator's detector sees the writer die, records member 1 as the
  writer and promotes it (fence, the tails of snapshots and ids, the consumer); a run in
  which member 0 comes back as the writer instead fails its check.

The partition is back when its recorded writer (``actors.ray_state.partition_actor``)
answers from a process other than the killed one with status RUNNING. The load goes on
until ``warmup`` seconds after the first reply that follows; then every deposit must have
been answered and accepted, and every touched account's balance, read at least at the
version its last reply gave, must be its restored balance plus its deposits (none lost,
none applied twice).

Figures per variant, on the bench's monotonic clock: the **answer gap**, the longest
silence between two replies from the last reply received before the kill to the first
received after the partition was back, as the fault suite measures it
(``eventledger.torture.gap``: replies of a batch committed just before the kill may arrive
after it); the kill to the reply that ends that silence; the kill to the partition being
back; with a standby, the kill to the takeover's record and the promoted member's
``takeover_steps_ms``; without, the restart's restore times from its ``stats()``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from actors.admin import ensure_topics
from actors.client import LedgerClient
from actors.deployment import stop_service
from actors.messages import Members, PartitionStats, PartitionStatus, ServiceStatus
from actors.ray_state import partition_actor, writer_member
from bench.check import CheckFailedError
from bench.deposits import DepositLoad, check_balances
from bench.model import FailoverRun, RunContext
from bench.restore import write_ids, write_snapshots
from eventledger.assembly import deploy_service
from eventledger.torture.gap import longest_silence
from topology.names import NAMESPACE, Names
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["run_failover"]

log = logging.getLogger(__name__)

_BACK_TIMEOUT = 900.0  # seconds for the partition to answer again (a 1M-account restore: ~10 s)
_FOLLOW_TIMEOUT = 900.0  # seconds for the standby to restore and follow
_CAUGHT_UP = 20  # commits the standby may be behind its writer when the kill comes
_POLL = 0.02  # seconds between two looks at the partition after the kill


def _pid(_actor: Any) -> int:
    """Run inside an actor by ``__ray_call__``: the process id of its worker."""
    return os.getpid()


def _pid_and_status(actor: Any) -> tuple[int, PartitionStatus]:
    """Run inside a member by ``__ray_call__``: its process id and status."""
    stats: PartitionStats = actor.stats()
    return os.getpid(), stats.status


@dataclass
class _Kill:
    """When things happened after the kill (monotonic seconds; None: not seen)."""

    pid: int
    killed: float
    back: float
    recorded: float | None
    lag: int | None  # the standby's commits behind its writer when the kill came


def run_failover(ctx: RunContext, standbys: int) -> FailoverRun:
    """One variant of the phase: the writer of a partition with ``standbys`` standbys
    killed under load (see the module)."""
    cfg = ctx.config
    keys, ids = cfg.failover_keys, cfg.failover_ids
    settings = Settings.resolve(
        app_id=f"{ctx.prefix}-failover-{standbys}",
        bootstrap_servers=ctx.bootstrap,
        partitions=1,
        standbys=standbys,
    )
    layout = TopicLayout(settings.app_id, 1)
    ensure_topics(ctx.bootstrap, layout)
    write_snapshots(ctx, layout.name(TopicKind.SNAPSHOTS), keys)
    write_ids(ctx, layout.name(TopicKind.REPLIES), keys, ids)
    with ctx.console.status(f"eventledger: an actor restoring {keys:,} accounts, {ids:,} ids..."):
        coordinator = deploy_service(settings, timeout=3_600)
    try:
        first: PartitionStats = ray.get(
            partition_actor(settings.app_id, 0).stats.remote(), timeout=60
        )
        if standbys:
            with ctx.console.status("eventledger: the standby restoring, then following..."):
                _wait_following(coordinator)
        with LedgerClient(settings, timeout=60) as client:
            load = DepositLoad(client, keys, cfg.failover_rate, "failover-load")
            load.start()
            try:
                kill = _kill_and_wait(ctx, settings, coordinator, load, standbys > 0)
            finally:
                load.stop()
            replies = [s.future.result(120) for s in load.sent]
        stats: PartitionStats = ray.get(
            partition_actor(settings.app_id, 0).stats.remote(), timeout=60
        )
        if standbys and stats.member == 0:
            raise CheckFailedError("no takeover: member 0 came back as the writer")
        balances = check_balances(settings, load.sent, replies)
    finally:
        stop_service(settings.app_id)
        shutil.rmtree(Path(settings.state_dir).expanduser() / settings.app_id, ignore_errors=True)
    before, after = longest_silence(load.reply_times(), kill.killed, kill.back)
    if before is None or after is None:
        raise CheckFailedError(f"no reply before or after the kill ({before}, {after})")
    if standbys:
        steps = dict(stats.takeover_steps_ms)
    else:
        steps = {"snapshots": stats.restore_seconds * 1000, "ids": stats.ids_restore_seconds * 1000}
    return FailoverRun(
        standbys=standbys,
        gap_seconds=after - before,
        kill_to_reply_seconds=after - kill.killed,
        kill_to_back_seconds=kill.back - kill.killed,
        kill_to_record_seconds=None if kill.recorded is None else kill.recorded - kill.killed,
        steps_ms=steps,
        facts={
            "deposits sent (all answered, accepted)": len(replies),
            "accounts checked (restored balance + deposits)": balances,
            "writer member after the kill": stats.member,
            "standby's lag at the kill (commits)": kill.lag,
            "first start: restore seconds": first.restore_seconds,
            "first start: ids restore seconds (a new disk)": first.ids_restore_seconds,
            "first start: ids restored": first.ids_restored,
            "restored records (snapshots) of the writer after the kill": stats.restored_records,
            "ids restored by the writer after the kill": stats.ids_restored,
            "aggregates after the kill": stats.aggregates,
        },
    )


def _wait_following(coordinator: Any) -> None:
    """Until the coordinator saw member 1 follow partition 0's writer."""
    deadline = time.monotonic() + _FOLLOW_TIMEOUT
    while time.monotonic() < deadline:
        members: Members = ray.get(coordinator.members.remote(), timeout=30)
        if members.standbys.get(0) == [1]:
            return
        time.sleep(0.5)
    raise CheckFailedError(f"the standby did not follow within {_FOLLOW_TIMEOUT:.0f} s")


def _caught_up(coordinator: Any) -> int:
    """Once member 1 is seen FOLLOWING within ``_CAUGHT_UP`` commits of the writer, its lag."""
    deadline = time.monotonic() + _FOLLOW_TIMEOUT
    lag = _standby_lag(coordinator)
    while lag is None or lag > _CAUGHT_UP:
        if time.monotonic() > deadline:
            raise CheckFailedError(f"the standby stayed behind ({lag} commits)")
        time.sleep(0.1)
        lag = _standby_lag(coordinator)
    return lag


def _standby_lag(coordinator: Any) -> int | None:
    """Member 1's commits behind the writer at the coordinator's last tick, while it is
    seen FOLLOWING (None: not following, or no standby)."""
    members: Members = ray.get(coordinator.members.remote(), timeout=30)
    if members.standbys.get(0) != [1]:
        return None
    status: ServiceStatus = ray.get(coordinator.status.remote(), timeout=30)
    return status.rows[0].standby_lags.get(1)


def _kill_and_wait(
    ctx: RunContext, settings: Settings, coordinator: Any, load: DepositLoad, standby: bool
) -> _Kill:
    """SIGKILL the writer's process after ``warmup`` s of load (with a ``standby``: once it
    is within ``_CAUGHT_UP`` commits); wait until the partition is back and ``warmup`` s
    have passed since the first reply after that."""
    app_id, warmup = settings.app_id, ctx.config.warmup
    time.sleep(warmup)
    lag = _caught_up(coordinator) if standby else None
    pid: int = ray.get(partition_actor(app_id, 0).__ray_call__.remote(_pid), timeout=30)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    watch = _Watch(app_id, pid)
    deadline = killed + _BACK_TIMEOUT
    with ctx.console.status(f"eventledger: writer (pid {pid}) killed, waiting..."):
        while time.monotonic() < deadline:
            back = watch.poll()
            if back is not None:
                after = longest_silence(load.reply_times(), killed, back)[1]
                if after is not None and time.monotonic() > after + warmup:
                    return _Kill(pid, killed, back, watch.recorded, lag)
            time.sleep(_POLL)
    raise CheckFailedError(f"no answer within {_BACK_TIMEOUT:.0f} s of the kill")


class _Watch:
    """After the kill of ``pid``: when the recorded writer member changed (``recorded``) and
    when the recorded writer answered RUNNING from another process (``poll``'s result). One
    call to the writer is in flight at a time and ``poll`` never waits for it, so each time
    is seen within ``_POLL`` s (a call to a restarting actor waits for its constructor)."""

    def __init__(self, app_id: str, pid: int) -> None:
        self.app_id, self.pid = app_id, pid
        self.member = writer_member(app_id, 0)
        self.recorded: float | None = None
        self.back: float | None = None
        self._pending: Any = None

    def poll(self) -> float | None:
        if self.back is not None:
            return self.back
        member = writer_member(self.app_id, 0)
        if member != self.member:
            self.member, self._pending = member, None
            self.recorded = self.recorded or time.monotonic()
        if self._pending is None:
            try:
                handle = ray.get_actor(Names(self.app_id).member_actor(0, member), NAMESPACE)
            except ValueError as e:  # its name not yet registered again
                log.debug("failover: waiting for the writer: %s", e)
                return None
            self._pending = handle.__ray_call__.remote(_pid_and_status)
        ready, _ = ray.wait([self._pending], timeout=0)
        if not ready:
            return None
        self._pending = None
        try:
            answered, status = ray.get(ready[0])
        except Exception as e:  # the member failed the call: ask again
            log.debug("failover: waiting for the writer: %s", e)
            return None
        if answered != self.pid and status is PartitionStatus.RUNNING:
            self.back = time.monotonic()
        return self.back
