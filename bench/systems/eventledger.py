"""eventledger, exactly-once: its partition actors on local Ray, on its own copy of the input.

The input copy is held in an open transaction until every actor has restored and runs, then
released at once. Throughput uses the actors' own clocks: from the earliest ``first_batch_at``
to the latest ``last_commit_at``, once every ``committed_offset`` reached its partition's end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

import ray

from actors.admin import ensure_topics
from actors.deployment import stop_service
from actors.kafka import producer_config
from actors.messages import PartitionStats
from actors.ray_state import partition_actors
from bench.check import Check, check_ledger_output
from bench.kafkaio import GatedCopy, count_records
from bench.model import RunContext, Throughput
from bench.workload import Expected
from eventledger.assembly import deploy_service
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["run_eventledger", "settings_config"]

log = logging.getLogger(__name__)


def settings_config(settings: Settings) -> dict[str, Any]:
    """What to report about a deployment: its settings and its producers' tuning."""
    config = {k: v for k, v in asdict(settings).items() if k not in ("app_id",)}
    producer = producer_config(settings, transactional_id="x")
    config["producer"] = {
        k: v
        for k, v in producer.items()
        if k not in ("bootstrap.servers", "transactional.id", "logger")
    }
    config["actors"] = (
        f"{settings.partitions} PartitionWorker actors (num_cpus=0) on local Ray, deployed as "
        "the service is (coordinator, history actors)"
    )
    return config


def run_eventledger(ctx: RunContext, source: str, expected: Expected) -> tuple[Throughput, Check]:
    partitions = ctx.config.partitions
    settings = Settings.resolve(
        app_id=f"{ctx.prefix}-el", bootstrap_servers=ctx.bootstrap, partitions=partitions
    )
    layout = TopicLayout(settings.app_id, partitions)
    ensure_topics(ctx.bootstrap, layout)
    copy = GatedCopy(ctx.bootstrap, source, layout.name(TopicKind.COMMANDS), partitions)
    targets = copy.counts
    try:
        deploy_service(settings, timeout=300)
    except BaseException:
        copy.abandon()
        raise
    try:
        handles = partition_actors(settings.app_id, settings.partitions)
        released_at = copy.release()
        stats = _drain(ctx, handles, targets)
        views: dict[str, Any] = {}
        for part in ray.get([h.views.remote() for h in handles], timeout=120):
            views.update(part)
    finally:
        copy.abandon()
        stop_service(settings.app_id)
    first_at = min(s.first_batch_at for s in stats if s.batches)
    last_at = max(s.last_commit_at for s in stats)
    batches = sum(s.batches for s in stats)
    processed = sum(s.processed for s in stats)
    result = Throughput(
        system="eventledger",
        commands=copy.total,
        first_at=first_at,
        last_at=last_at,
        config=settings_config(settings),
        facts={
            "released → last commit (s)": last_at - released_at,
            "transactions": batches,
            "commands per transaction": processed / batches if batches else 0.0,
            "aborts": sum(s.aborts for s in stats),
            "producer restarts": sum(s.producer_restarts for s in stats),
            "snapshots": count_records(ctx.bootstrap, layout.name(TopicKind.SNAPSHOTS), partitions),
            "state views": count_records(ctx.bootstrap, layout.name(TopicKind.STATE), partitions),
            "rss_bytes per actor": [s.rss_bytes for s in stats],
        },
    )
    check = check_ledger_output(
        ctx.bootstrap,
        "eventledger",
        replies=layout.name(TopicKind.REPLIES),
        events=layout.name(TopicKind.EVENTS),
        partitions=partitions,
        expected=expected,
    )
    actor_total = sum(v.balance for v in views.values())
    check.expect("Σ balances (actors' views)", actor_total, expected.money)
    differ = sum(1 for k, v in check.balances.items() if k not in views or views[k].balance != v)
    check.expect("accounts whose actor view differs from the events", differ, 0)
    result.facts["events"] = check.facts.get("events")
    result.check = check.summary()
    return result, check


def _drain(ctx: RunContext, handles: list[Any], targets: list[int]) -> list[PartitionStats]:
    """Poll the actors' stats until each committed offset reaches its partition's end."""
    task = ctx.progress.add_task("eventledger", total=sum(targets))
    deadline = time.monotonic() + ctx.config.drain_timeout
    while True:
        stats: list[PartitionStats] = ray.get([h.stats.remote() for h in handles], timeout=60)
        ctx.progress.update(task, completed=sum(s.processed for s in stats))
        for s in stats:
            if s.status != "running":
                raise RuntimeError(f"partition {s.partition} is {s.status}: {s.error}")
        if all(s.committed_offset >= t for s, t in zip(stats, targets, strict=True)):
            return stats
        if time.monotonic() > deadline:
            raise TimeoutError(f"eventledger did not drain: {[s.committed_offset for s in stats]}")
        time.sleep(0.25)  # the figures come from the actors' clocks, not from this poll
