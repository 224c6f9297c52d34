"""The raw pipe (harness side): the ceiling for moving these bytes in Python here.

``rawpipe_processes`` worker processes (default: one per core, which moved the most here),
each owning a share of the partitions, consume → produce with confluent-kafka, no
transactions, no state; see ``rawpipe_worker``.
Timed from the earliest first consume to the latest flush (every record acknowledged).
"""

from __future__ import annotations

import logging
import sys
import time

from actors.admin import ensure_topics
from bench.check import Check, check_counts
from bench.kafkaio import GatedCopy
from bench.model import RunContext, Throughput
from bench.procs import Worker
from bench.systems.rawpipe_worker import BATCH, PRODUCER
from topology.topics import TopicKind, TopicLayout

__all__ = ["run_rawpipe"]

log = logging.getLogger(__name__)

_OUTPUTS = (TopicKind.REPLIES, TopicKind.EVENTS, TopicKind.SNAPSHOTS, TopicKind.STATE)


def run_rawpipe(ctx: RunContext, source: str) -> tuple[Throughput, Check]:
    partitions = ctx.config.partitions
    layout = TopicLayout(f"{ctx.prefix}-raw", partitions)
    ensure_topics(ctx.bootstrap, layout)
    commands = layout.name(TopicKind.COMMANDS)
    outputs = [layout.name(k) for k in _OUTPUTS]
    copy = GatedCopy(ctx.bootstrap, source, commands, partitions)
    processes = ctx.config.rawpipe_workers
    shares = [list(range(partitions))[i::processes] for i in range(processes)]
    workers = [
        Worker(
            f"rawpipe-{i}",
            sys.executable,
            "bench.systems.rawpipe_worker",
            {
                "bootstrap": ctx.bootstrap,
                "source": commands,
                "partitions": share,
                "records": sum(copy.counts[p] for p in share),
                "outputs": outputs,
            },
            ctx.log_dir,
        )
        for i, share in enumerate(shares)
    ]
    try:
        for w in workers:
            w.wait_for("ready", 120)
        copy.release()
        for w in workers:
            w.go()
        task = ctx.progress.add_task("raw pipe", total=copy.total)
        deadline = time.monotonic() + ctx.config.drain_timeout
        while not all(w.latest("report") for w in workers):
            done = 0
            for w in workers:
                w.check_alive()
                message = w.latest("report") or w.latest("progress")
                done += message["processed"] if message else 0
            ctx.progress.update(task, completed=done)
            if time.monotonic() > deadline:
                raise TimeoutError("the raw pipe did not drain")
            time.sleep(0.1)
        ctx.progress.update(task, completed=copy.total)
        reports = [w.finish(60) for w in workers]
    finally:
        copy.abandon()
        for w in workers:
            w.kill()
    keyed = sum(r["per_batch_keys"] for r in reports)
    result = Throughput(
        system="rawpipe",
        commands=copy.total,
        first_at=min(r["first_at"] for r in reports),
        last_at=max(r["last_at"] for r in reports),
        config={
            "processes": processes,
            "per command": "reply + event (the command's bytes)",
            "per consumed batch": "snapshot + state record per distinct key",
            "batch": BATCH,
            "producer": PRODUCER,
            "transactions": False,
        },
        facts={"output records": 2 * copy.total + 2 * keyed},
    )
    check = check_counts(
        ctx.bootstrap,
        "rawpipe",
        partitions,
        {
            "replies": (outputs[0], copy.total),
            "events": (outputs[1], copy.total),
            "snapshots": (outputs[2], keyed),
            "state records": (outputs[3], keyed),
        },
    )
    result.check = check.summary()
    return result, check
