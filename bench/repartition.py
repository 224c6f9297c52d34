"""Repartition: a live application grown from 4 to 8 partitions under a light command load
(the ``repartition`` phase of ``python -m bench``; issue 23, ``docs/design-repartition.md``).

An application of ``repartition_from`` partitions holding ``repartition_keys`` accounts,
seeded as the restore phase seeds them (one current-schema snapshot record per account,
the real codec, a plain producer, each to the partition Kafka's layout gives it), is
deployed through its coordinator; once every partition has restored, one ``LedgerClient``
sends deposits of 1 to those accounts, open loop at ``repartition_rate`` per second (each
sent at its scheduled time, whatever the replies do). After ``repartition_before`` seconds
of load the coordinator is asked for ``repartition_to`` partitions (``Coordinator.repartition``,
two sources at a time) and followed until its record is DONE; the load goes on for
``repartition_before`` seconds more. Then every deposit must have been answered and
accepted, every account held by exactly one partition, the balances summed over all
partitions equal to the seeded total plus the deposits, and every touched account's
balance (read at least at the version of its last reply) its seeded balance plus its
deposits.

Figures, from the coordinator's ``RepartitionRecord``: the switch's total time (request →
DONE, growth of the topics included) and its moving time (the first move requested →
DONE), moves, slots and accounts moved (the accounts whose slot changed owner) per second
of moving, each leg's pause (the source's handoff batch, the target's install batch, as the
partitions report them) as p50 and max over the moves, and per partition the longest pause
of its legs; from the client: the deposits' latency (reply − scheduled send) p50 / p99
before, during and after the switch, and per answering partition the longest silence
between its replies before and during the switch (the pause as a client sees it, measured
whether or not the partitions report their legs).

No peer is measured: Kafka Streams cannot grow a running application's partitions (a
source topic's partition count is fixed for an application; its tasks, state stores and
changelogs are per input partition, so growing it means resetting the application or a
new one with its state rebuilt offline).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import ray

from actors.admin import ensure_topics
from actors.client import LedgerClient
from actors.deployment import stop_service
from actors.messages import PartitionStats, RepartitionProgress
from actors.ray_state import partition_actor
from bench.check import CheckFailedError
from bench.deposits import DepositLoad, Sent, check_balances
from bench.model import RepartitionRun, RunContext
from bench.restore import account_id, write_snapshots
from eventledger.assembly import deploy_service
from topology.control import RepartitionPhase, RepartitionRecord
from topology.envelopes import Reply
from topology.routing import slot
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["KSTREAMS_CANNOT", "answer_gaps", "latency_ms", "pauses", "run_repartition"]

log = logging.getLogger(__name__)

KSTREAMS_CANNOT = (
    "cannot online: a Kafka Streams application's source partition count is fixed "
    "(tasks, stores and changelogs are per input partition); growing it means an "
    "application reset or a new application, state rebuilt offline"
)
_SWITCH_TIMEOUT = 3_600.0  # seconds for the repartition to end
_PARALLEL = 2  # sources moving at a time (the design's default on 2 cores)


def latency_ms(samples: list[tuple[float, float]], since: float, until: float) -> dict[str, float]:
    """p50, p99 (ms) and count of the (scheduled send, reply) pairs sent in [since, until)."""
    taken = sorted((r - s) * 1000 for s, r in samples if since <= s < until)
    if not taken:
        return {"n": 0}
    p99 = taken[min(len(taken) - 1, round(0.99 * (len(taken) - 1)))]
    return {"n": len(taken), "p50": statistics.median(taken), "p99": p99, "max": taken[-1]}


def answer_gaps(replies: list[tuple[int, float]], since: float, until: float) -> dict[str, Any]:
    """Per partition (the one that answered: the reply's position), the longest silence
    between two of its replies received in [since, until], in ms, and when it began (s
    after ``since``); with p50 and max over the partitions (a partition with fewer than two
    replies there has none)."""
    times: dict[int, list[float]] = {}
    for p, at in replies:
        if since <= at <= until:
            times.setdefault(p, []).append(at)
    widest = {
        p: max(itertools.pairwise(sorted(ts)), key=lambda pair: pair[1] - pair[0])
        for p, ts in sorted(times.items())
        if len(ts) > 1
    }
    if not widest:
        return {}
    per = {p: (b - a) * 1000 for p, (a, b) in widest.items()}
    return {
        "per_partition": per,
        "began_at": {p: a - since for p, (a, _) in widest.items()},
        "p50": statistics.median(per.values()),
        "max": max(per.values()),
    }


def pauses(record: RepartitionRecord) -> dict[str, Any]:
    """Each leg's pause over the moves (p50, max, ms), and per partition its longest leg."""
    handoffs = [m.handoff_pause_ms for m in record.moves if m.handoff_pause_ms is not None]
    installs = [m.install_pause_ms for m in record.moves if m.install_pause_ms is not None]
    per: dict[int, float] = {}
    for m in record.moves:
        for p, ms in ((m.source, m.handoff_pause_ms), (m.target, m.install_pause_ms)):
            if ms is not None:
                per[p] = max(per.get(p, 0.0), ms)

    def stats(values: list[float]) -> dict[str, float]:
        return {"p50": statistics.median(values), "max": max(values)} if values else {}

    return {
        "handoff": stats(handoffs),
        "install": stats(installs),
        "legs": stats(handoffs + installs),
        "partition_max": dict(sorted(per.items())),
        "partition_max_p50": statistics.median(per.values()) if per else None,
    }


def run_repartition(ctx: RunContext) -> RepartitionRun:
    """The phase (see the module)."""
    cfg = ctx.config
    keys, before = cfg.repartition_keys, cfg.repartition_before
    settings = Settings.resolve(
        app_id=f"{ctx.prefix}-repartition",
        bootstrap_servers=ctx.bootstrap,
        partitions=cfg.repartition_from,
    )
    ensure_topics(ctx.bootstrap, TopicLayout.of(settings))
    seeded = _seed(ctx, settings)
    with ctx.console.status(f"eventledger: {settings.partitions} actors restoring {keys:,}..."):
        coordinator = deploy_service(settings, timeout=3_600)
    try:
        with LedgerClient(settings, timeout=60) as client:
            load = DepositLoad(client, keys, cfg.repartition_rate, "repartition-load")
            began = time.monotonic()
            load.start()
            try:
                time.sleep(cfg.warmup + before)
                switch = time.monotonic()
                record = _switch(ctx, coordinator, cfg.repartition_to)
                done = time.monotonic()
                time.sleep(before)
            finally:
                load.stop()
            replies = [s.future.result(120) for s in load.sent]
        if record.phase is not RepartitionPhase.DONE:
            raise CheckFailedError(f"the repartition ended {record.phase}: {record.error}")
        grown = dataclasses.replace(settings, partitions=record.to_partitions)
        facts = _check(grown, keys, seeded, load.sent, replies)
    finally:
        stop_service(settings.app_id)
        shutil.rmtree(Path(settings.state_dir).expanduser() / settings.app_id, ignore_errors=True)
    samples = [(s.at, s.replied) for s in load.sent if s.replied is not None]
    answered = [
        (r.position.partition, s.replied)
        for s, r in zip(load.sent, replies, strict=True)
        if s.replied is not None and r.position is not None
    ]
    moved_slots = {s for m in record.moves for s in m.slots}
    moved = sum(1 for i in range(keys) if slot(account_id(i).encode(), record.slots) in moved_slots)
    first_request = min((m.requested_at for m in record.moves), default=record.requested_at)
    moving = record.finished_at - first_request
    moves_began = switch + (first_request - record.requested_at)  # on the monotonic clock
    return RepartitionRun(
        keys=keys,
        rate=cfg.repartition_rate,
        from_partitions=record.from_partitions,
        to_partitions=record.to_partitions,
        switch_seconds=record.finished_at - record.requested_at,
        moving_seconds=moving,
        moves=len(record.moves),
        slots=record.slots,
        slots_moved=len(moved_slots),
        accounts_moved=moved,
        accounts_per_second=moved / moving if moving > 0 else 0.0,
        pauses=pauses(record),
        latency_ms={
            "before": latency_ms(samples, began + cfg.warmup, switch),
            "during": latency_ms(samples, switch, done),
            "after": latency_ms(samples, done, float("inf")),
        },
        answer_gaps_ms={
            "before": answer_gaps(answered, began + cfg.warmup, switch),
            "growing": answer_gaps(answered, switch, moves_began),
            "moving": answer_gaps(answered, moves_began, done),
        },
        peer=KSTREAMS_CANNOT,
        facts={
            **facts,
            "switch seen by the bench (s)": done - switch,
            "growing (s): request → first move requested": first_request - record.requested_at,
            "moves per source": dict(sorted(Counter(m.source for m in record.moves).items())),
        },
    )


def _seed(ctx: RunContext, settings: Settings) -> int:
    """One current-schema snapshot per account (version 1) to its partition's snapshots;
    returns the seeded balances' total."""
    topic = TopicLayout.of(settings).name(TopicKind.SNAPSHOTS)
    return write_snapshots(ctx, topic, ctx.config.repartition_keys, settings.partitions)


def _switch(ctx: RunContext, coordinator: Any, partitions: int) -> RepartitionRecord:
    """Ask for ``partitions`` and follow the repartition until it ends; its final record."""
    started: RepartitionRecord = ray.get(
        coordinator.repartition.remote(partitions, _PARALLEL), timeout=60
    )
    task = ctx.progress.add_task(
        f"eventledger: repartition {started.from_partitions} → {partitions}", total=None
    )
    deadline = time.monotonic() + _SWITCH_TIMEOUT
    while time.monotonic() < deadline:
        progress: RepartitionProgress = ray.get(
            coordinator.repartition_progress.remote(), timeout=30
        )
        record = progress.record
        if record is not None and record.number == started.number:
            ctx.progress.update(task, total=len(record.moves) or None, completed=record.done())
            if not record.phase.active:
                return record
        if progress.error:
            log.info("repartition step: %s", progress.error)
        time.sleep(0.2)
    raise CheckFailedError(f"the repartition did not end within {_SWITCH_TIMEOUT:.0f} s")


def _check(
    settings: Settings, keys: int, seeded: int, sent: list[Sent], replies: list[Reply]
) -> dict[str, Any]:
    """Every deposit accepted; the ``keys`` accounts held once each over the partitions of
    ``settings``; Σ balances = seeded + deposits; each touched account its seeded balance
    plus its deposits (read at least at the version of its last reply)."""
    handles = [partition_actor(settings.app_id, p) for p in range(settings.partitions)]
    stats: list[PartitionStats] = ray.get([h.stats.remote() for h in handles], timeout=120)
    held = sum(s.aggregates for s in stats)
    if held != keys:
        raise CheckFailedError(f"the partitions hold {held} accounts, not {keys}")
    total = 0
    for p in range(settings.partitions):
        views = ray.get(handles[p].views.remote(), timeout=600)
        total += sum(int(v.balance) for v in views.values())
    if total != seeded + len(replies):
        raise CheckFailedError(f"Σ balances {total}, expected {seeded} + {len(replies)}")
    touched = check_balances(settings, sent, replies)
    return {
        "deposits sent (all answered, accepted)": len(replies),
        "accounts held (Σ over partitions)": held,
        "accounts touched and checked": touched,
        "accounts per partition after": [s.aggregates for s in stats],
        "records forwarded (Σ since each worker started)": sum(s.forwarded for s in stats),
        "Σ balances = seeded + deposits": total,
    }
