"""Restore: how fast a restarted partition gets its state back, and what holding it costs.

eventledger: ``restore_keys`` snapshot records (the real codec) are written with a plain
producer to the snapshots topic of a one-partition application, then a partition actor is
started; it reads them all before it reports ready, and its ``stats()`` give the restore time,
the records read and its resident memory (beside an idle actor's, holding nothing). Then the
same again with ``restore_ids`` remembered replies in the replies topic (the id memory's
changelog, ten per account): the actor restores its id memory onto a new disk as well, and its
``stats()`` give that restore's time, the store's bytes on disk and the resident memory.

Quix Streams: a Quix application fills its state store with the same number of accounts
(building its changelog topic itself), then a second instance of the same application starts
on an empty state directory and recovers the store from that changelog. The time is the span
between Quix's own log lines "Beginning recovery check..." and "Recovery process complete!".
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from actors.admin import ensure_topics
from actors.deployment import stop_service
from actors.kafka import bootstrap_config
from actors.messages import PartitionStats
from actors.ray_state import partition_actor
from bench.kafkaio import GroupProbe, count_records, create_topics, producer_config
from bench.model import Restore, RunContext
from bench.procs import Worker
from bench.systems.quix import drain_group, quix_python, worker_config
from eventledger.assembly import deploy_service
from ledger.aggregate import LEDGER
from ledger.state import Account
from topology.codec.aggregate import Codec
from topology.codec.keys import encode_id_key, encode_key
from topology.codec.replies import encode_entry
from topology.envelopes import Answered, Position, Reply, Slot
from topology.partitioner import partition_for
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = [
    "account_id",
    "balance_of",
    "one_partition",
    "run_eventledger_restore",
    "run_quix_restore",
    "write_ids",
    "write_snapshots",
]

log = logging.getLogger(__name__)


def balance_of(i: int) -> int:
    return (i * 7_919) % 1_000_000


def account_id(i: int) -> str:
    return f"acc-{i:07d}"


def run_eventledger_restore(ctx: RunContext) -> Restore:
    keys = ctx.config.restore_keys
    idle_stats = _stats_once_started(one_partition(ctx, "idle"))
    settings = one_partition(ctx, "restore")
    layout = TopicLayout(settings.app_id, 1)
    ensure_topics(ctx.bootstrap, layout)
    write_snapshots(ctx, layout.name(TopicKind.SNAPSHOTS), keys)
    with ctx.console.status(f"eventledger: an actor restoring {keys:,} accounts..."):
        stats = _stats_once_started(settings)
    if stats.aggregates != keys:
        raise RuntimeError(f"the actor restored {stats.aggregates} accounts, not {keys}")
    ids = _restore_with_ids(ctx, stats.rss_bytes)
    return Restore(
        system="eventledger",
        keys=keys,
        seconds=stats.restore_seconds,
        records=stats.restored_records,
        rss_bytes=stats.rss_bytes,
        method="PartitionWorker restore (stats: restore_seconds, restored_records, rss_bytes)",
        facts={
            "aggregates": stats.aggregates,
            "idle actor rss_bytes": idle_stats.rss_bytes,
            "rss above the idle actor": stats.rss_bytes - idle_stats.rss_bytes,
            **ids,
        },
    )


def _restore_with_ids(ctx: RunContext, accounts_rss: int) -> dict[str, Any]:
    """An actor restoring the same accounts and ``restore_ids`` remembered ids (a new disk)."""
    keys, ids = ctx.config.restore_keys, ctx.config.restore_ids
    settings = one_partition(ctx, "restore-ids")
    layout = TopicLayout(settings.app_id, 1)
    ensure_topics(ctx.bootstrap, layout)
    write_snapshots(ctx, layout.name(TopicKind.SNAPSHOTS), keys)
    write_ids(ctx, layout.name(TopicKind.REPLIES), keys, ids)
    with ctx.console.status(f"eventledger: an actor restoring {keys:,} accounts, {ids:,} ids..."):
        stats = _stats_once_started(settings)
    if stats.ids_restored < ids:  # the changelog also holds the actor's touch
        raise RuntimeError(f"the actor read {stats.ids_restored} remembered ids, not {ids}")
    seconds = stats.ids_restore_seconds
    return {
        "ids remembered": ids,
        "ids restore seconds": seconds,
        "ids restore records/s": ids / seconds if seconds > 0 else 0.0,
        "rss_bytes with the ids": stats.rss_bytes,
        "rss per remembered id (bytes)": (stats.rss_bytes - accounts_rss) / ids,
        "id store disk bytes": stats.ids_disk_bytes,
        "disk per remembered id (bytes)": stats.ids_disk_bytes / ids,
    }


def write_ids(ctx: RunContext, topic: str, keys: int, ids: int) -> None:
    """``ids`` remembered replies (accepted deposits with 20-character command ids), spread
    over the accounts, as the actor writes them to its replies partition."""
    producer = Producer(producer_config(ctx.bootstrap))
    task = ctx.progress.add_task("eventledger: writing remembered ids", total=ids)
    first = int(time.time() * 1000)
    for i in range(ids):
        aggregate_id, command_id = account_id(i % keys), f"cmd-{i:016d}"
        reply = Reply.accept(
            command_id=command_id,
            aggregate_id=aggregate_id,
            version=2 + i // keys,
            position=Position(0, i + 1),  # one batch per id, on partition 0
        )
        entry = encode_entry(Answered(reply, first, i + 1))
        _produce(producer, topic, entry, encode_id_key(aggregate_id, command_id))
        if i % 50_000 == 0:
            producer.poll(0)
            ctx.progress.update(task, completed=i)
    if producer.flush(600):
        raise RuntimeError(f"ids to {topic} were not all delivered")
    ctx.progress.update(task, completed=ids)


def _stats_once_started(settings: Settings) -> PartitionStats:
    """Deploy the application (its one partition actor), take the actor's stats once it has
    restored, then stop it and remove its local state."""
    deploy_service(settings, timeout=3_600)
    try:
        handle = partition_actor(settings.app_id, 0)
        stats: PartitionStats = ray.get(handle.stats.remote(), timeout=60)
    finally:
        stop_service(settings.app_id)
        shutil.rmtree(Path(settings.state_dir).expanduser() / settings.app_id, ignore_errors=True)
    return stats


def one_partition(ctx: RunContext, name: str) -> Settings:
    return Settings.resolve(
        app_id=f"{ctx.prefix}-{name}", bootstrap_servers=ctx.bootstrap, partitions=1
    )


def write_snapshots(ctx: RunContext, topic: str, keys: int, partitions: int = 1) -> int:
    """One current-schema snapshot per account (version 1, no remembered replies), each to
    its partition of ``partitions`` (Kafka's layout); returns the balances' total."""
    producer = Producer(producer_config(ctx.bootstrap))
    task = ctx.progress.add_task("eventledger: writing snapshots", total=keys)
    codec, total = Codec(LEDGER), 0
    for i in range(keys):
        aggregate_id = account_id(i)
        account = Account(
            status="open",
            currency="EUR",
            balance=balance_of(i),
            overdraft_limit=5_000 if i % 10 == 0 else 0,
        )
        key, value = codec.snapshots.record(aggregate_id, Slot(state=account, version=1), 0)
        _produce(producer, topic, value, key, partition_for(encode_key(aggregate_id), partitions))
        total += account.balance
        if i % 20_000 == 0:
            producer.poll(0)
            ctx.progress.update(task, completed=i)
    if producer.flush(600):
        raise RuntimeError(f"snapshots to {topic} were not all delivered")
    ctx.progress.update(task, completed=keys)
    return total


def _produce(producer: Producer, topic: str, value: bytes, key: bytes, partition: int = 0) -> None:
    while True:
        try:
            producer.produce(topic, value, key, partition)
            return
        except BufferError:
            producer.poll(0.05)


def run_quix_restore(ctx: RunContext) -> Restore:
    keys = ctx.config.restore_keys
    python = quix_python(ctx)
    group = f"{ctx.prefix}-quix-restore"
    source = f"{group}.accounts"
    create_topics(ctx.bootstrap, [source], 1)
    producer = Producer(producer_config(ctx.bootstrap))
    task = ctx.progress.add_task("quix: writing its input", total=keys)
    for i in range(keys):
        _produce(producer, source, str(balance_of(i)).encode(), account_id(i).encode())
        if i % 50_000 == 0:
            producer.poll(0)
            ctx.progress.update(task, completed=i)
    if producer.flush(300):
        raise RuntimeError(f"records to {source} were not all delivered")
    ctx.progress.update(task, completed=keys)

    state_root = Path(tempfile.mkdtemp(prefix="bench-quix-restore-"))
    try:
        fill = Worker(
            "quix-fill",
            python,
            "bench.systems.quix_job",
            worker_config(
                ctx,
                mode="fill",
                group=group,
                source=source,
                state_dir=state_root / "fill",
                commit_interval=5.0,
            ),
            ctx.log_dir,
        )
        try:
            fill.wait_for("ready", 180)
            probe = GroupProbe(ctx.bootstrap, group)
            drain_group(
                ctx,
                "quix: filling its state store",
                probe,
                topic=source,
                targets=[keys],
                workers=[fill],
            )
            fill.terminate()
            fill.finish(600)
        finally:
            fill.kill()
        changelogs = _changelogs(ctx, group)
        changelog_records = sum(count_records(ctx.bootstrap, t, 1) for t in changelogs)
        recover = Worker(
            "quix-recover",
            python,
            "bench.systems.quix_job",
            worker_config(
                ctx,
                mode="recover",
                group=group,
                source=source,
                state_dir=state_root / "recover",
                commit_interval=5.0,
                idle_timeout=1.0,
            ),
            ctx.log_dir,
        )
        try:
            with ctx.console.status(f"quix: recovering {keys:,} keys from its changelog..."):
                report = recover.finish(3_600)
        finally:
            recover.kill()
    finally:
        shutil.rmtree(state_root, ignore_errors=True)
    began, completed = report["recovery_began_at"], report["recovery_completed_at"]
    if not (began and completed):
        raise RuntimeError(f"Quix logged no recovery: {report}")
    return Restore(
        system="quix",
        keys=keys,
        seconds=completed - began,
        records=changelog_records,
        rss_bytes=report["rss_bytes"],
        method='Quix log lines "Beginning recovery check..." → "Recovery process complete!"',
        facts={
            "changelog topics": changelogs,
            "app.run() → recovery complete (s)": completed - report["started_at"],
            "recovered partitions": report["recovered_partitions"],
            "note": "Quix keeps its state in RocksDB on disk: its RSS is not the state's size",
        },
    )


def _changelogs(ctx: RunContext, group: str) -> list[str]:
    topics = AdminClient(bootstrap_config(ctx.bootstrap)).list_topics(timeout=30).topics
    return sorted(t for t in topics if t.startswith("changelog__") and group in t)
