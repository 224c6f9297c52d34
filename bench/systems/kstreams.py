"""Kafka Streams, exactly-once v2: the seed article's topology (``bench/kstreams``, Java) as a
peer, run as a subprocess on its own topics (eventledger's layout, so the same checks and the
same senders apply).

The jar is built with ``mvn -q package`` on first use and cached under
``~/.cache/eventledger/`` by the checksum of the Maven project (pom and sources). Each start
gets a fresh application id (a closed Kafka Streams group lingers for its session timeout).
Throughput is measured as Quix's is: its first processed command → the moment its group's
committed offsets (committed inside its transactions) reach the ends, polled every 50 ms.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from actors.admin import ensure_topics
from bench.check import Check, check_ledger_output
from bench.kafkaio import GatedCopy, GroupProbe, count_records, wait_until
from bench.model import RunContext, Throughput
from bench.procs import REPO, Worker
from bench.systems.quix import drain_group
from bench.workload import Expected
from topology.topics import TopicKind, TopicLayout

__all__ = ["PROJECT", "KStreamsApp", "ensure_jar", "run_kstreams"]

log = logging.getLogger(__name__)

PROJECT = REPO / "bench" / "kstreams"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "eventledger"
THREADS = 2  # stream threads: one per core here, as Quix runs one process per core
COMMIT_INTERVAL_MS = 100  # the EOS default, set explicitly


def _digest() -> str:
    h = hashlib.sha256()
    files = [PROJECT / "pom.xml", *sorted((PROJECT / "src").rglob("*.java"))]
    for f in files:
        h.update(str(f.relative_to(PROJECT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def ensure_jar() -> Path:
    """The shaded jar of ``bench/kstreams``, built (``mvn -q package``) if not cached."""
    jar = CACHE / f"ledger-streams-{_digest()}.jar"
    if jar.exists():
        return jar
    log.info("building the Kafka Streams peer with Maven")
    done = subprocess.run(
        ["mvn", "-q", "-B", "package", "-DskipTests"],
        cwd=PROJECT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"mvn package failed ({done.returncode}):\n{tail}")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = jar.with_suffix(f".{os.getpid()}.part")
    shutil.copyfile(PROJECT / "target" / "ledger-streams.jar", partial)
    partial.replace(jar)
    for old in CACHE.glob("ledger-streams-*.jar"):
        if old != jar:  # jars of earlier versions of the project (~95 MB each)
            old.unlink(missing_ok=True)
    return jar


class KStreamsApp:
    """One running Kafka Streams application (fresh id) on topics of eventledger's layout."""

    def __init__(self, ctx: RunContext, name: str, partitions: int, reply_lanes: int = 1) -> None:
        with ctx.console.status("Kafka Streams jar (the first run builds it with Maven)..."):
            jar = ensure_jar()
        self.app_id = f"{ctx.prefix}-ks-{name}-{uuid.uuid4().hex[:4]}"
        self.layout = TopicLayout(self.app_id, partitions, reply_lanes)
        ensure_topics(ctx.bootstrap, self.layout)
        self.commands = self.layout.name(TopicKind.COMMANDS)
        self.replies = self.layout.name(TopicKind.REPLIES)
        self.events = self.layout.name(TopicKind.EVENTS)
        self.state = self.layout.name(TopicKind.STATE)
        self._ctx = ctx
        self._state_dir = Path(tempfile.mkdtemp(prefix="bench-kstreams-"))
        args = {
            "bootstrap": ctx.bootstrap,
            "app_id": self.app_id,
            "commands": self.commands,
            "replies": self.replies,
            "events": self.events,
            "state": self.state,
            "reply_lanes": reply_lanes,
            "state_dir": self._state_dir,
            "threads": THREADS,
            "commit_interval_ms": COMMIT_INTERVAL_MS,
        }
        self.worker = Worker(
            f"kstreams-{name}", "java", "", {}, ctx.log_dir,
            argv=["java", "-Xms256m", "-Xmx1g", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                  "-jar", str(jar),
                  *(f"{k}={v}" for k, v in args.items())],
        )  # fmt: skip

    def wait_settled(self, timeout: float = 180.0) -> None:
        """RUNNING, and its group stable with every partition assigned to its threads."""
        self.worker.wait_for("ready", timeout)
        probe = GroupProbe(self._ctx.bootstrap, self.app_id)
        partitions = set(range(self.layout.partitions))

        def settled() -> bool:
            self.worker.check_alive()
            state, members, assigned = probe.assignment(self.commands)
            return state == "STABLE" and members == THREADS and assigned == partitions

        wait_until(settled, timeout=timeout, interval=0.2, what="the Kafka Streams group")

    def stop(self) -> dict[str, Any]:
        """Close it (``KafkaStreams.close``) and return its report."""
        self.worker.say("stop")
        return self.worker.finish(90)

    def kill(self) -> None:
        self.worker.kill()
        shutil.rmtree(self._state_dir, ignore_errors=True)

    @staticmethod
    def config() -> dict[str, Any]:
        return {
            "kafka-streams": "4.1.1 (bench/kstreams, Java 17, Processor API)",
            "processing.guarantee": "exactly_once_v2",
            "commit.interval.ms": COMMIT_INTERVAL_MS,
            "num.stream.threads": THREADS,
            "state": "persistent (RocksDB) key-value store, changelog on; msgpack account",
            "outputs": "a reply per command (to its reply lane); event and public state per "
            "accepted one; eventledger's record formats",
            "deduplication": "none (the workload's command ids are unique)",
            "clients": "Kafka Streams defaults otherwise",
        }


def run_kstreams(
    ctx: RunContext, source: str, expected: Expected, reference: dict[str, int] | None
) -> tuple[Throughput, Check]:
    partitions = ctx.config.partitions
    app = KStreamsApp(ctx, "tp", partitions)
    copy: GatedCopy | None = None
    try:
        copy = GatedCopy(ctx.bootstrap, source, app.commands, partitions)
        app.wait_settled()
        released_at = copy.release()
        probe = GroupProbe(ctx.bootstrap, app.app_id)
        last_at = drain_group(
            ctx, "kafka streams", probe, topic=app.commands, targets=copy.counts,
            workers=[app.worker],
        )  # fmt: skip
        report = app.stop()
    finally:
        if copy is not None:
            copy.abandon()
        app.kill()
    result = Throughput(
        system="kstreams",
        commands=copy.total,
        first_at=report["first_at"],
        last_at=last_at,
        config=KStreamsApp.config(),
        facts={
            "processed": report["processed"],
            "released → last commit (s)": last_at - released_at,
            "state views": count_records(ctx.bootstrap, app.state, partitions),
        },
    )
    check = check_ledger_output(
        ctx.bootstrap, "kstreams", replies=app.replies, events=app.events,
        partitions=partitions, expected=expected, reference_balances=reference,
    )  # fmt: skip
    result.facts["events"] = check.facts.get("events")
    result.check = check.summary()
    return result, check
