"""Quix Streams, exactly-once, on its own copy of the commands topic (harness side).

``replicas`` worker processes (default: one per core, Quix's best here in trials of 1, 2 and
4 processes over 4 partitions) run ``bench.systems.quix_job`` in one consumer group. The input
copy is held in an open transaction until the group is stable with every partition assigned,
so no start-up rebalance falls inside the measured window; the end is when the group's
committed offsets (committed inside Quix's transactions) reach the end of every partition.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from actors.admin import ensure_topics
from actors.kafka import bootstrap_config
from bench.check import Check, check_ledger_output
from bench.kafkaio import GatedCopy, GroupProbe, count_records, wait_until
from bench.model import RunContext, Throughput
from bench.procs import Worker
from bench.systems.quixenv import ensure_quix_venv
from bench.workload import Expected
from topology.topics import TopicKind, TopicLayout

__all__ = ["CONSUMER", "PRODUCER", "drain_group", "quix_python", "run_quix", "worker_config"]

log = logging.getLogger(__name__)

# The same client tuning as eventledger's (actors.kafka): Quix's defaults are
# librdkafka's (linger.ms=5, no compression, fetch.wait.max.ms=500).
PRODUCER: dict[str, Any] = {"linger.ms": 2, "compression.type": "lz4", "acks": "all"}
CONSUMER: dict[str, Any] = {"fetch.wait.max.ms": 50}
_JOB = "bench.systems.quix_job"


def _recent_limit() -> int:
    """Replies the peer remembers per account for deduplication. eventledger used to keep
    this many; it now remembers every id for its idempotency window (a stronger guarantee
    that costs it more), so the peer's figure is a conservative comparison."""
    return 16


def quix_python(ctx: RunContext) -> Path:
    with ctx.console.status("Quix Streams virtualenv (first run installs it)..."):
        return ensure_quix_venv()


def worker_config(
    ctx: RunContext,
    *,
    mode: str,
    group: str,
    source: str,
    state_dir: Path,
    commit_interval: float,
    outputs: list[str] | None = None,
    idle_timeout: float = 2.0,
) -> dict[str, Any]:
    return {
        "mode": mode,
        "bootstrap": ctx.bootstrap,
        "group": group,
        "input": source,
        "outputs": outputs or [],
        "guarantee": "exactly-once",
        "commit_interval": commit_interval,
        "state_dir": str(state_dir),
        "recent_limit": _recent_limit(),
        "views": ctx.config.quix_views,
        "producer": PRODUCER,
        "consumer": CONSUMER,
        "idle_timeout": idle_timeout,
    }


def drain_group(
    ctx: RunContext,
    label: str,
    probe: GroupProbe,
    *,
    topic: str,
    targets: list[int],
    workers: list[Worker],
) -> float:
    """Poll the group's committed offsets until each partition's reaches its target; return
    the wall-clock time that was first seen."""
    task = ctx.progress.add_task(label, total=sum(targets))
    deadline = time.monotonic() + ctx.config.drain_timeout
    while True:
        offsets = probe.committed(topic, len(targets))
        ctx.progress.update(
            task, completed=sum(min(max(o, 0), t) for o, t in zip(offsets, targets, strict=True))
        )
        if all(o >= t for o, t in zip(offsets, targets, strict=True)):
            return time.time()
        for w in workers:
            w.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: committed {offsets}, want {targets}")
        time.sleep(0.05)


def run_quix(
    ctx: RunContext, source: str, expected: Expected, reference: dict[str, int] | None
) -> tuple[Throughput, Check]:
    python = quix_python(ctx)
    partitions = ctx.config.partitions
    app = f"{ctx.prefix}-quix"
    layout = TopicLayout(app, partitions)
    ensure_topics(ctx.bootstrap, layout)
    commands = layout.name(TopicKind.COMMANDS)
    outputs = [layout.name(k) for k in (TopicKind.REPLIES, TopicKind.EVENTS, TopicKind.STATE)]
    copy = GatedCopy(ctx.bootstrap, source, commands, partitions)
    state_root = Path(tempfile.mkdtemp(prefix="bench-quix-state-"))
    replicas = ctx.config.replicas
    workers = [
        Worker(
            f"quix-{i}",
            python,
            _JOB,
            worker_config(
                ctx,
                mode="process",
                group=app,
                source=commands,
                state_dir=state_root / str(i),
                commit_interval=ctx.config.quix_commit_interval,
                outputs=outputs,
            ),
            ctx.log_dir,
        )
        for i in range(replicas)
    ]
    try:
        ready = [w.wait_for("ready", 180) for w in workers]
        probe = GroupProbe(ctx.bootstrap, app)

        def settled() -> bool:
            state, members, assigned = probe.assignment(commands)
            return state == "STABLE" and members == replicas and assigned == set(range(partitions))

        wait_until(settled, timeout=180, interval=0.2, what="the Quix group to settle")
        released_at = copy.release()
        last_at = drain_group(
            ctx, "quix streams", probe, topic=commands, targets=copy.counts, workers=workers
        )
        for w in workers:
            w.terminate()
        reports = [w.finish(180) for w in workers]
    finally:
        copy.abandon()
        for w in workers:
            w.kill()
        shutil.rmtree(state_root, ignore_errors=True)
    firsts = [r["first_at"] for r in reports if r["first_at"] > 0]
    changelogs = [
        t
        for t in AdminClient(bootstrap_config(ctx.bootstrap)).list_topics(timeout=30).topics
        if t.startswith("changelog__") and app in t
    ]
    facts: dict[str, Any] = {
        "processed per replica": [r["processed"] for r in reports],
        "released → last commit (s)": last_at - released_at,
        "replies": count_records(ctx.bootstrap, outputs[0], partitions),
        "state views": count_records(ctx.bootstrap, outputs[2], partitions),
        "changelog records": sum(count_records(ctx.bootstrap, t, partitions) for t in changelogs),
        "rss_bytes per replica": [r["rss_bytes"] for r in reports],
    }
    result = Throughput(
        system="quix",
        commands=copy.total,
        first_at=min(firsts),
        last_at=last_at,
        config={
            "processing_guarantee": "exactly-once",
            "commit_interval_s": ctx.config.quix_commit_interval,
            "commit_every": 0,
            "replicas (processes in one consumer group)": replicas,
            "state": "RocksDB store (Quix default options), changelog topic on, JSON values",
            "outputs": "a reply per command; event(s) and the public view per accepted one"
            if ctx.config.quix_views
            else "a reply per command; event(s) per accepted one",
            "producer_extra_config": PRODUCER,
            "consumer_extra_config": CONSUMER,
            "versions": {k: v for k, v in ready[0].items() if k != "kind"},
        },
        facts=facts,
    )
    check = check_ledger_output(
        ctx.bootstrap,
        "quix",
        replies=outputs[0],
        events=outputs[1],
        partitions=partitions,
        expected=expected,
        reference_balances=reference,
    )
    result.facts["events"] = check.facts.get("events")
    result.check = check.summary()
    return result, check
