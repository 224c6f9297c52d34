"""Service settings, built in one place: explicit arguments > environment > defaults."""

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self, TypeVar

from topology.connection import API_ENV_PREFIX, ENV_PREFIX, PROPERTIES_FILE, KafkaProperties
from topology.resources import DEFAULT_RESOURCE, Reservation, reservation
from topology.routing import MAX_SLOTS

__all__ = [
    "AUTO_STANDBYS",
    "DAY_MS",
    "DEFAULT_STATE_DIR",
    "ENVIRONMENT",
    "Settings",
    "api_kafka_properties",
    "configured_bootstrap",
    "kafka_properties",
]

ENVIRONMENT: Mapping[str, str] = {
    "app_id": "EVENTLEDGER_APP_ID",
    "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "partitions": "EVENTLEDGER_PARTITIONS",
    "batch_max_commands": "EVENTLEDGER_BATCH_MAX_COMMANDS",
    "batch_max_ms": "EVENTLEDGER_BATCH_MAX_MS",
    "idempotency_window_ms": "EVENTLEDGER_IDEMPOTENCY_WINDOW_MS",
    "state_dir": "EVENTLEDGER_STATE_DIR",
    "transaction_timeout_ms": "EVENTLEDGER_TRANSACTION_TIMEOUT_MS",
    "reply_lanes": "EVENTLEDGER_REPLY_LANES",
    "replication_factor": "EVENTLEDGER_REPLICATION_FACTOR",
    "min_insync_replicas": "EVENTLEDGER_MIN_INSYNC_REPLICAS",
    "partition_resource": "EVENTLEDGER_PARTITION_RESOURCE",
    "actor_memory_mb": "EVENTLEDGER_ACTOR_MEMORY_MB",
    "aggregate_bytes": "EVENTLEDGER_AGGREGATE_BYTES",
    "read_wait_ms": "EVENTLEDGER_READ_WAIT_MS",
    "standbys": "EVENTLEDGER_STANDBYS",
    "writer_suspect_ms": "EVENTLEDGER_WRITER_SUSPECT_MS",
    "slots_per_partition": "EVENTLEDGER_SLOTS_PER_PARTITION",
}
"""Field name → environment variable that may set it."""

_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
DAY_MS: Final = 24 * 60 * 60 * 1000
AUTO_STANDBYS: Final = -1
"""`Settings.standbys`: one standby per partition on two or more nodes, else none."""
DEFAULT_STATE_DIR: Final = "~/.cache/eventledger/state"
_T = TypeVar("_T", int, float, str)


@dataclass(frozen=True)
class Settings:
    """Validated settings. `app_id` prefixes every topic, transactional id and actor name,
    so it is limited to the characters Kafka allows in topic names. A command id is
    deduplicated for `idempotency_window_ms` after its first attempt (default 24 h); the
    idempotency memory of each partition lives under `state_dir` on the actor's node.

    `kafka` holds pass-through librdkafka properties (SASL, SSL, `client.id`, ...), secrets
    masked in every repr. Topics the service creates get `replication_factor` replicas (-1:
    the broker's `default.replication.factor`) and `min.insync.replicas` =
    `min_insync_replicas` (0: derived from the replication factor, see
    `topology.topics`).

    `api_kafka`, when given, holds the API tier's own properties (its Kafka principal, which
    may write commands and read replies, never the service's other topics): `for_api()` is
    what the HTTP replicas and the clients' Kafka clients run with. None: they share `kafka`.

    A partition actor reserves one `partition_resource` (a custom Ray resource; "" for
    none) and `actor_memory_mb` MiB plus `aggregate_bytes` per aggregate it holds.

    A read that asks for at least a version or position waits up to `read_wait_ms` (default
    200 ms) for the partition's committed state to reach it.

    Each partition has `standbys` standbys (read-only members that follow its writer);
    `AUTO_STANDBYS` (-1, the default): one when two or more alive nodes offer the partition
    resource, else none (`standbys_for`).

    A writer that answers no liveness ping for `writer_suspect_ms` (default 2000 ms; 0: never)
    is taken as dead, as one whose process ended is at once: a standby takes over (the writer,
    if it wakes, is fenced).

    When its slots are first assigned, the application takes `slots` = `partitions` ×
    `slots_per_partition` (default 240) slots, at most `MAX_SLOTS`, fixed from then on
    (`topology.routing`, `docs/design-repartition.md`)."""

    app_id: str
    bootstrap_servers: str
    partitions: int = 4
    batch_max_commands: int = 1000
    batch_max_ms: float = 20.0
    idempotency_window_ms: int = DAY_MS
    transaction_timeout_ms: int = 10_000
    reply_lanes: int = 1
    state_dir: str = DEFAULT_STATE_DIR
    kafka: KafkaProperties = field(default_factory=KafkaProperties)
    replication_factor: int = -1
    min_insync_replicas: int = 0
    partition_resource: str = DEFAULT_RESOURCE
    actor_memory_mb: int = 128
    aggregate_bytes: int = 1024
    api_kafka: KafkaProperties | None = None
    read_wait_ms: int = 200
    standbys: int = AUTO_STANDBYS
    writer_suspect_ms: int = 2000
    slots_per_partition: int = 240

    def __post_init__(self) -> None:
        if _APP_ID.fullmatch(self.app_id) is None:
            raise ValueError(
                f"app_id must be 1-200 letters, digits, '.', '_' or '-', got {self.app_id!r}"
            )
        if not self.bootstrap_servers.strip():
            raise ValueError("bootstrap_servers must not be empty")
        _at_least("partitions", self.partitions, 1)
        _at_least("batch_max_commands", self.batch_max_commands, 1)
        _at_least("idempotency_window_ms", self.idempotency_window_ms, 1000)
        if not self.state_dir.strip():
            raise ValueError("state_dir must not be empty")
        _at_least("transaction_timeout_ms", self.transaction_timeout_ms, 1)
        _at_least("reply_lanes", self.reply_lanes, 1)
        if self.replication_factor != -1:
            _at_least("replication_factor (or -1)", self.replication_factor, 1)
        _at_least("min_insync_replicas (or 0, derived)", self.min_insync_replicas, 0)
        _at_least("actor_memory_mb", self.actor_memory_mb, 1)
        _at_least("aggregate_bytes", self.aggregate_bytes, 0)
        _at_least("read_wait_ms", self.read_wait_ms, 0)
        _at_least("standbys (or -1, auto)", self.standbys, AUTO_STANDBYS)
        _at_least("writer_suspect_ms (or 0, never)", self.writer_suspect_ms, 0)
        _at_least("slots_per_partition", self.slots_per_partition, 1)
        if self.slots > MAX_SLOTS:
            raise ValueError(
                f"partitions × slots_per_partition must not exceed {MAX_SLOTS}, got "
                f"{self.partitions} × {self.slots_per_partition} = {self.slots}"
            )
        if 0 < self.replication_factor < self.min_insync_replicas:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) must not exceed "
                f"replication_factor ({self.replication_factor})"
            )
        if not 0 < self.batch_max_ms < self.transaction_timeout_ms:
            raise ValueError(
                f"batch_max_ms must be > 0 and below transaction_timeout_ms "
                f"({self.transaction_timeout_ms}), got {self.batch_max_ms}"
            )

    @classmethod
    def resolve(
        cls,
        *,
        app_id: str | None = None,
        bootstrap_servers: str | None = None,
        partitions: int | None = None,
        batch_max_commands: int | None = None,
        batch_max_ms: float | None = None,
        idempotency_window_ms: int | None = None,
        transaction_timeout_ms: int | None = None,
        reply_lanes: int | None = None,
        state_dir: str | None = None,
        kafka: Mapping[str, str] | None = None,
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
        partition_resource: str | None = None,
        actor_memory_mb: int | None = None,
        aggregate_bytes: int | None = None,
        api_kafka: Mapping[str, str] | None = None,
        read_wait_ms: int | None = None,
        standbys: int | None = None,
        writer_suspect_ms: int | None = None,
        slots_per_partition: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Each field from its explicit (non-None) argument, else its `ENVIRONMENT` variable
        in `environ` (default `os.environ`), else its default. Kafka properties: `kafka`
        beats `EVENTLEDGER_KAFKA_*` variables, which beat the properties file; the bootstrap
        servers fall back to the properties' `bootstrap.servers`. The API tier's: the same
        with `api_kafka` and `EVENTLEDGER_API_KAFKA_*` (`api_kafka_properties`). Raises
        ValueError."""
        env = os.environ if environ is None else environ
        properties = kafka_properties(env, kafka)
        return cls(
            app_id=_pick(app_id, env, "app_id", str, "eventledger"),
            bootstrap_servers=_pick(
                bootstrap_servers,
                env,
                "bootstrap_servers",
                str,
                properties.get("bootstrap.servers") or "127.0.0.1:9092",
            ),
            partitions=_pick(partitions, env, "partitions", int, 4),
            batch_max_commands=_pick(batch_max_commands, env, "batch_max_commands", int, 1000),
            batch_max_ms=_pick(batch_max_ms, env, "batch_max_ms", float, 20.0),
            idempotency_window_ms=_pick(
                idempotency_window_ms, env, "idempotency_window_ms", int, DAY_MS
            ),
            transaction_timeout_ms=_pick(
                transaction_timeout_ms, env, "transaction_timeout_ms", int, 10_000
            ),
            reply_lanes=_pick(reply_lanes, env, "reply_lanes", int, 1),
            state_dir=_pick(state_dir, env, "state_dir", str, DEFAULT_STATE_DIR),
            kafka=properties,
            replication_factor=_pick(replication_factor, env, "replication_factor", int, -1),
            min_insync_replicas=_pick(min_insync_replicas, env, "min_insync_replicas", int, 0),
            partition_resource=_pick(
                partition_resource, env, "partition_resource", str, DEFAULT_RESOURCE
            ),
            actor_memory_mb=_pick(actor_memory_mb, env, "actor_memory_mb", int, 128),
            aggregate_bytes=_pick(aggregate_bytes, env, "aggregate_bytes", int, 1024),
            api_kafka=api_kafka_properties(env, api_kafka),
            read_wait_ms=_pick(read_wait_ms, env, "read_wait_ms", int, 200),
            standbys=_standbys(standbys, env),
            writer_suspect_ms=_pick(writer_suspect_ms, env, "writer_suspect_ms", int, 2000),
            slots_per_partition=_pick(slots_per_partition, env, "slots_per_partition", int, 240),
        )

    def for_api(self) -> Self:
        """The settings the API tier runs with: `api_kafka` in place of `kafka`, whole (none of
        the service's own properties, its password least of all, is inherited), and its
        `bootstrap.servers` when it names one; these settings themselves when there is none."""
        if self.api_kafka is None:
            return self
        return dataclasses.replace(
            self,
            kafka=self.api_kafka,
            api_kafka=None,
            bootstrap_servers=self.api_kafka.get("bootstrap.servers") or self.bootstrap_servers,
        )

    @property
    def slots(self) -> int:
        """S, the slots the application takes when they are first assigned."""
        return self.partitions * self.slots_per_partition

    @property
    def max_standbys(self) -> int:
        """The most standbys a partition may have (``AUTO_STANDBYS``: one)."""
        return 1 if self.standbys == AUTO_STANDBYS else self.standbys

    def standbys_for(self, nodes: int) -> int:
        """The standbys each partition has while ``nodes`` alive nodes offer the partition
        resource."""
        if self.standbys == AUTO_STANDBYS:
            return 1 if nodes >= 2 else 0
        return self.standbys

    def reservation(self, aggregates: int = 0) -> Reservation:
        """What a partition actor holding `aggregates` aggregates reserves on its node."""
        return reservation(
            self.partition_resource, self.actor_memory_mb, self.aggregate_bytes, aggregates
        )


def kafka_properties(
    environ: Mapping[str, str],
    explicit: Mapping[str, str] | None = None,
    *,
    prefix: str = ENV_PREFIX,
) -> KafkaProperties:
    """The pass-through Kafka properties: the file named by `EVENTLEDGER_KAFKA_PROPERTIES_FILE`,
    then `EVENTLEDGER_KAFKA_*` variables, then `explicit` (another `prefix`: its own file
    variable and variables). Raises ValueError."""
    variable = prefix + PROPERTIES_FILE
    path = environ.get(variable, "").strip()
    text = None
    if path:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as e:
            raise ValueError(f"{variable}={path}: {e.strerror}") from None
    found = KafkaProperties.resolve(environ, text, source=path, prefix=prefix)
    return found if not explicit else KafkaProperties.of(dict(found.items), explicit)


def api_kafka_properties(
    environ: Mapping[str, str], explicit: Mapping[str, str] | None = None
) -> KafkaProperties | None:
    """The API tier's own Kafka properties (`EVENTLEDGER_API_KAFKA_PROPERTIES_FILE`, then
    `EVENTLEDGER_API_KAFKA_*`, then `explicit`), or None when none is given anywhere: then
    the API tier uses the service's. Raises ValueError."""
    given = explicit or any(name.startswith(API_ENV_PREFIX) for name in environ)
    return kafka_properties(environ, explicit, prefix=API_ENV_PREFIX) if given else None


def configured_bootstrap(environ: Mapping[str, str] | None = None) -> str | None:
    """The Kafka cluster the environment names (`KAFKA_BOOTSTRAP_SERVERS`, else the Kafka
    properties' `bootstrap.servers`), or None: then the local broker is meant."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENVIRONMENT["bootstrap_servers"], "").strip()
    return explicit or kafka_properties(env).get("bootstrap.servers") or None


def _pick(
    explicit: _T | None, env: Mapping[str, str], field: str, parse: type[_T], default: _T
) -> _T:
    if explicit is not None:
        return explicit
    variable = ENVIRONMENT[field]
    raw = env.get(variable)
    if raw is None or not raw.strip():
        return default
    try:
        return parse(raw.strip())
    except ValueError:
        raise ValueError(f"{variable} must parse as {parse.__name__}, got {raw!r}") from None


def _standbys(explicit: int | None, env: Mapping[str, str]) -> int:
    """``EVENTLEDGER_STANDBYS``: a count, or ``auto`` (``AUTO_STANDBYS``)."""
    if explicit is None and env.get(ENVIRONMENT["standbys"], "").strip().lower() == "auto":
        return AUTO_STANDBYS
    return _pick(explicit, env, "standbys", int, AUTO_STANDBYS)


def _at_least(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}")
