"""A local Apache Kafka broker (KRaft, broker + controller in one JVM).

The official jars come from Maven Central (``eventledger.kafka_jars``). The broker's data,
logs and pid file live in a home directory the launcher owns; starting is idempotent (a live
broker recorded in that home is reused), stopping leaves no JVM behind. By default it is a
node alone; ``eventledger.broker_cluster`` runs several as one cluster (a shared quorum,
replicas on each).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eventledger.kafka_jars import (
    KAFKA_VERSION,
    BrokerError,
    default_cache_dir,
    require_tool,
    resolve_jars,
)
from topology.topics import min_insync_replicas

__all__ = [
    "KAFKA_VERSION",
    "Broker",
    "BrokerError",
    "BrokerHome",
    "default_cache_dir",
    "new_cluster_id",
    "resolve_jars",
]

log = logging.getLogger(__name__)

_READY_TIMEOUT_S = 90.0


def _cores() -> int:
    """The cores this process may run on (the broker runs beside it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_SERVER_JVM: Final = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)
"""Kafka's own start script's GC options: one broker on the machine."""

SHARED_JVM: Final = (
    *_SERVER_JVM,
    "-XX:TieredStopAtLevel=1",
    "-XX:CICompilerCount=1",
    "-XX:ParallelGCThreads=1",
    "-XX:ConcGCThreads=1",
)
"""Several brokers on one small machine (a local cluster): the client compiler only and one
compiler and GC thread each. A JVM that starts compiles its hot code with C2 on threads of
its own; three doing so at once beside the service starved the other nodes' controllers
for seconds (heartbeats timed out, leaders stayed fenced), and a cluster restarted by the
fault suite took a minute to answer again."""


@dataclass(frozen=True)
class BrokerHome:
    """Where one broker keeps its data, logs and pid file, and the ports it listens on."""

    path: Path = field(default_factory=lambda: default_cache_dir() / "broker")
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    jvm_options: tuple[str, ...] = _SERVER_JVM
    """The JVM's options beside the heap (``_SERVER_JVM``; a cluster's nodes: ``SHARED_JVM``)."""
    sasl_port: int | None = None
    """A second configuration: also listen for SASL/PLAIN (``SASL_PLAINTEXT``) here."""
    sasl_users: tuple[tuple[str, str], ...] = ()
    """The (user, password) pairs the SASL/PLAIN listener accepts."""
    super_users: tuple[str, ...] = ()
    """SASL users above the ACLs. Any turns Kafka's ``StandardAuthorizer`` on: the other SASL
    users may do only what ACLs allow them. The plain listeners' principal (``ANONYMOUS``: the
    broker's own inter-broker and controller traffic, and local clients of ``bootstrap``)
    is a super user too."""
    node_id: int = 1
    quorum: tuple[tuple[int, int], ...] = ()
    """The controller quorum's voters as (node id, controller port); empty: this node alone."""
    replicas: int = 1
    """The replication factor of new topics and of the internal ones; min ISR follows
    (``topology.topics.min_insync_replicas``: 2 of 3)."""
    replica_lag_ms: int = 30_000
    """``replica.lag.time.max.ms``: a follower this far behind leaves the ISR (with replicas)."""

    def __post_init__(self) -> None:
        if (self.sasl_port is None) != (not self.sasl_users):
            raise ValueError("a SASL listener needs both sasl_port and sasl_users")
        for user, password in self.sasl_users:
            if not user.isidentifier() or '"' in password or "\\" in password:
                raise ValueError("SASL users must be identifiers, passwords without quotes")
        unknown = set(self.super_users) - {user for user, _ in self.sasl_users}
        if unknown:
            raise ValueError(f"super users must be SASL users: {sorted(unknown)}")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        """The SASL/PLAIN listener's address, when there is one."""
        return None if self.sasl_port is None else f"127.0.0.1:{self.sasl_port}"

    def _listeners(self) -> list[str]:
        if self.sasl_port is None:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        users = " ".join(f'user_{user}="{password}"' for user, password in self.sasl_users)
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port},"
            f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}",
            "listener.security.protocol.map="
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
            *self._authorizer(),
        ]

    def _authorizer(self) -> list[str]:
        if not self.super_users:
            return []
        supers = ";".join(f"User:{user}" for user in ("ANONYMOUS", *self.super_users))
        return [
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users={supers}",
        ]

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def pid_file(self) -> Path:
        return self.path / "broker.pid"

    @property
    def server_log(self) -> Path:
        return self.path / "logs" / "server.log"

    def server_properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={self.voters}",
                *self._listeners(),
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                *self._replication(),
                "auto.create.topics.enable=false",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.num.partitions=4",
                "group.initial.rebalance.delay.ms=0",
                "log.cleaner.backoff.ms=1000",
                # A transaction open past its timeout is aborted within a second of it, not
                # within Kafka's 10 s check: its writer learns sooner that it must start over.
                "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
                # A broker killed and started again registers anew; the controller refuses it
                # (DUPLICATE_BROKER_REGISTRATION) until the dead incarnation's session ends.
                # Kafka's 9 s session (2 s heartbeats) made every restart take 11-13 s and
                # longer under load. 3 s was too short: a node that heartbeats to itself,
                # starved of CPU for seconds (a demo beside other work), missed its session
                # and its controller fenced it, every partition leaderless for a minute.
                "broker.heartbeat.interval.ms=500",
                "broker.session.timeout.ms=6000",
                # Threads sized to the cores the broker shares with the service (Kafka's
                # defaults, 3 and 8, are a server's). On 2 cores, 1 and 2 cut the broker's CPU
                # per command by about a quarter and raised the e2e rate (docs/performance.md).
                f"num.network.threads={max(1, _cores() // 2)}",
                f"num.io.threads={max(2, _cores())}",
                "",
            ]
        )

    @property
    def voters(self) -> str:
        """``controller.quorum.voters``: every voter as ``id@host:port``."""
        quorum = self.quorum or ((self.node_id, self.controller_port),)
        return ",".join(f"{node}@127.0.0.1:{port}" for node, port in quorum)

    def _replication(self) -> list[str]:
        # A topic created with replication -1 (the service's default) gets `replicas`
        # replicas; the internal topics as many, so transactions and group offsets need
        # `min.insync.replicas` of them (one node: one suffices).
        isr = min_insync_replicas(self.replicas)
        lines = [
            f"default.replication.factor={self.replicas}",
            f"min.insync.replicas={isr}",
            f"offsets.topic.replication.factor={self.replicas}",
            f"transaction.state.log.replication.factor={self.replicas}",
            f"transaction.state.log.min.isr={isr}",
        ]
        if self.replicas > 1:
            lines += [
                f"replica.lag.time.max.ms={self.replica_lag_ms}",
                "unclean.leader.election.enable=false",
            ]
        return lines

    def log4j_config(self) -> str:
        return (
            "Configuration:\n"
            "  Appenders:\n"
            "    RollingFile:\n"
            "      name: F\n"
            f"      fileName: {self.server_log}\n"
            f"      filePattern: {self.server_log}.%i\n"
            "      PatternLayout:\n"
            '        pattern: "[%d] %p %m (%c)%n"\n'
            "      SizeBasedTriggeringPolicy:\n"
            "        size: 50MB\n"
            "      DefaultRolloverStrategy:\n"
            "        max: 2\n"
            "  Loggers:\n"
            "    Root:\n"
            "      level: INFO\n"
            "      AppenderRef:\n"
            "        - ref: F\n"
        )


def new_cluster_id() -> str:
    """A fresh KRaft cluster id (a UUID in URL-safe base64, as ``StorageTool random-uuid``)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def _answers_metadata(bootstrap: str, timeout: float = 2.0) -> bool:
    from confluent_kafka.admin import AdminClient

    from actors.kafka import bootstrap_config

    try:
        AdminClient({**bootstrap_config(bootstrap), "log_level": 0}).list_topics(timeout=timeout)
    except Exception:
        return False
    return True


class Broker:
    """Start, stop and inspect the local broker that lives in one ``BrokerHome``."""

    def __init__(self, home: BrokerHome | None = None, cache_dir: Path | None = None) -> None:
        self.home = home or BrokerHome()
        self.cache_dir = cache_dir

    def pid(self) -> int | None:
        """The recorded pid if that process is alive."""
        try:
            pid = int(self.home.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None and _answers_metadata(self.home.bootstrap)

    def start(self) -> str:
        """Start the broker (or reuse the live one) and return its bootstrap address."""
        home = self.home
        if self.pid() is not None:
            if self._wait_ready(timeout=_READY_TIMEOUT_S):
                log.info("reusing the broker already running at %s", home.bootstrap)
                return home.bootstrap
            raise BrokerError(f"a broker process is recorded in {home.pid_file} but never answers")
        started = time.monotonic()
        self.await_ready(self.launch())
        log.info("broker up at %s in %.1fs", home.bootstrap, time.monotonic() - started)
        return home.bootstrap

    def launch(self, cluster_id: str | None = None) -> subprocess.Popen[bytes]:
        """Spawn the broker's JVM and record its pid, without waiting for it to answer. Storage
        not formatted yet is formatted first, for ``cluster_id`` (None: a new cluster)."""
        home = self.home
        java = require_tool("java", "install Java 17+ to run the Kafka broker")
        for port in (home.port, home.controller_port, home.sasl_port):
            if port is None:
                continue
            if _port_open(port):
                raise BrokerError(f"port {port} is taken by another process (not our broker)")
        libs = resolve_jars(self.cache_dir)
        classpath = os.pathsep.join(str(p) for p in sorted(libs.glob("*.jar")))
        home.path.mkdir(parents=True, exist_ok=True)
        home.server_log.parent.mkdir(parents=True, exist_ok=True)
        props = home.path / "server.properties"
        props.write_text(home.server_properties())
        log4j = home.path / "log4j2.yaml"
        log4j.write_text(home.log4j_config())
        jvm = [
            java, f"-Xms{home.heap}", f"-Xmx{home.heap}", *home.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={home.server_log.parent}",
            "-cp", classpath,
        ]  # fmt: skip
        if not (home.data_dir / "meta.properties").exists():
            self._format(jvm, props, cluster_id or new_cluster_id())
        out = (home.server_log.parent / "stdout.log").open("ab")
        proc = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(props)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        home.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def await_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait until the launched broker answers metadata requests; if it never does (or
        exits), stop it and raise ``BrokerError`` with the log's last error."""
        if not self._wait_ready(timeout=_READY_TIMEOUT_S, proc=proc):
            self.stop()
            raise BrokerError(
                f"the broker did not start; see {self.home.server_log}: {self._last_error()}"
            )

    def cluster_id(self) -> str | None:
        """The cluster id its storage was formatted for, or None when it is not formatted."""
        try:
            text = (self.home.data_dir / "meta.properties").read_text()
        except FileNotFoundError:
            return None
        found = [ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith("cluster.id=")]
        return found[0].strip() if found else None

    def _format(self, jvm: list[str], props: Path, cid: str) -> None:
        # One argument with "=": an id that starts with "-" would otherwise read as an option.
        proc = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cid}", "-c", str(props)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            msg = (proc.stdout + proc.stderr).strip().splitlines()
            raise BrokerError(f"formatting KRaft storage failed: {msg[-1] if msg else '?'}")

    def _wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            if _port_open(self.home.port) and _answers_metadata(self.home.bootstrap):
                return True
            time.sleep(0.25)
        return False

    def _last_error(self) -> str:
        try:
            lines = self.home.server_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "no log written"
        errors = [ln for ln in lines if " ERROR " in ln or "Exception" in ln]
        return (errors or lines or ["empty log"])[-1][:300]

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait, then SIGKILL the broker's process group. True if one was running."""
        pid = self.pid()
        if pid is None:
            self.home.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            log.warning("broker %d ignored SIGTERM for %.0fs; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.home.pid_file.unlink(missing_ok=True)
        return True
