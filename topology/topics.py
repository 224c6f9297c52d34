"""Topic names and configs. Every data topic has the same partition count: commands, events,
snapshots and state are co-partitioned by aggregate id; dlq follows suit so that a partition
number is valid everywhere, and so does internal (the commands the service sends itself, a
transfer's next leg, to the partition of their aggregate; only the service writes it).
The replies topic has `partitions × reply_lanes` partitions:
partition p's writer answers lane l on `p * reply_lanes + l`, so every replies partition has
exactly one transactional writer (a read_committed reader of a partition waits for the oldest
transaction open on it; with one writer that is only the transaction it waits for anyway),
and a client reads one lane: `reply_partitions(lane)`.

Two kinds of topic sit beside the `TopicKind` ones: the compacted control topic
`{app_id}.control` (one partition: the coordinator's desired state, keyed by record name) and
the snapshot generations. Generation 0 is `{app_id}.snapshots` itself; a rebuild writes
generation n > 0 to `{app_id}.snapshots.g{n}`, with the snapshots' partition count and
configs, so the generation a partition reads is a number in the desired state.

An application grows in place (`docs/design-repartition.md`): every per-partition topic gets
more partitions at the end (`growth`), and replies `p * reply_lanes + lane` for the new p are
exactly the new indices. A topic never shrinks, so a snapshot generation created before a
growth that the layout later recreates may have more partitions than the layout: usable."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from topology.idempotency import replies_retention_ms
from topology.settings import DAY_MS, Settings

__all__ = [
    "CONTROL_PARTITIONS",
    "TopicKind",
    "TopicLayout",
    "TopicSpec",
    "growth",
    "min_insync_replicas",
    "mismatches",
]

_DAY_MS: Final = 24 * 60 * 60 * 1000
_HOUR_MS: Final = 60 * 60 * 1000
_FOREVER: Final = "-1"
_DEFAULT_CLEANUP: Final = "delete"
_DEFAULT_RETENTION_MS: Final = str(7 * _DAY_MS)
CONTROL_PARTITIONS: Final = 1
"""The control topic has one partition: its records are totally ordered."""


class TopicKind(StrEnum):
    """The role of a topic; its name is `{app_id}.{kind}`."""

    COMMANDS = "commands"
    REPLIES = "replies"
    EVENTS = "events"
    SNAPSHOTS = "snapshots"
    STATE = "state"
    DLQ = "dlq"
    INTERNAL = "internal"  # commands the service sends itself (a transfer's legs)


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partition count and topic-level configs. With `at_least`,
    an existing topic with more partitions is usable too (a snapshot generation: a topic
    grows, it never shrinks)."""

    name: str
    partitions: int
    config: dict[str, str]
    at_least: bool = False


_COMMON: Final = {"message.timestamp.type": "CreateTime"}
_COMPACTED: Final = {
    "cleanup.policy": "compact",
    # Roll segments hourly so the log cleaner can compact them (it never touches the active
    # segment); restore then reads about one record per aggregate plus the last hour.
    "segment.ms": str(_HOUR_MS),
    "min.cleanable.dirty.ratio": "0.1",
    # A reader that is catching up still sees each record for at least a minute.
    "min.compaction.lag.ms": "60000",
}
_CONTROL: Final = {
    "cleanup.policy": "compact",
    "segment.ms": str(_HOUR_MS),
    "min.cleanable.dirty.ratio": "0.1",
    "min.compaction.lag.ms": "60000",
}
_CONFIGS: Final[Mapping[TopicKind, Mapping[str, str]]] = {
    TopicKind.COMMANDS: {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)},
    TopicKind.INTERNAL: {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)},
    # The idempotency memory's changelog: one remembered reply per (aggregate, command id)
    # survives compaction, and deletion drops what is past the window (retention: see specs).
    TopicKind.REPLIES: {"cleanup.policy": "compact,delete", "segment.ms": str(_HOUR_MS)},
    TopicKind.EVENTS: {
        "cleanup.policy": "delete",
        "retention.ms": _FOREVER,
        "retention.bytes": _FOREVER,
    },
    TopicKind.SNAPSHOTS: _COMPACTED,
    TopicKind.STATE: _COMPACTED,
    TopicKind.DLQ: {
        "cleanup.policy": "delete",
        "retention.ms": _FOREVER,
        "retention.bytes": _FOREVER,
    },
}


@dataclass(frozen=True)
class TopicLayout:
    """The topics of one application."""

    app_id: str
    partitions: int
    reply_lanes: int = 1
    idempotency_window_ms: int = DAY_MS

    @classmethod
    def of(cls, settings: Settings) -> "TopicLayout":
        """The layout of the application `settings` describe."""
        return cls(
            settings.app_id,
            settings.partitions,
            settings.reply_lanes,
            settings.idempotency_window_ms,
        )

    def reply_partition(self, partition: int, lane: int) -> int:
        """Where partition `partition`'s writer puts a reply for a client of `lane`."""
        return partition * self.reply_lanes + lane

    def reply_partitions(self, lane: int) -> list[int]:
        """The replies partitions a client of `lane` reads (one per data partition)."""
        return [self.reply_partition(p, lane) for p in range(self.partitions)]

    def replies_of(self, partition: int) -> list[int]:
        """The replies partitions partition `partition` writes (one per lane): together, the
        changelog of its idempotency memory."""
        return [self.reply_partition(partition, lane) for lane in range(self.reply_lanes)]

    @property
    def prefix(self) -> str:
        """What every topic of the application begins with (Kafka ACLs grant them by it)."""
        return f"{self.app_id}."

    def name(self, kind: TopicKind) -> str:
        """The topic name for `kind`."""
        return f"{self.prefix}{kind}"

    def specs(self) -> list[TopicSpec]:
        """Every data topic of the application, in `TopicKind` order."""
        return [
            TopicSpec(
                self.name(kind),
                self.partitions * (self.reply_lanes if kind is TopicKind.REPLIES else 1),
                {**_COMMON, **_CONFIGS[kind], **self._retention(kind)},
            )
            for kind in TopicKind
        ]

    def _retention(self, kind: TopicKind) -> dict[str, str]:
        if kind is not TopicKind.REPLIES:
            return {}
        return {"retention.ms": str(replies_retention_ms(self.idempotency_window_ms))}

    @property
    def control(self) -> str:
        """The compacted control topic (the coordinator's desired state)."""
        return f"{self.prefix}control"

    def control_spec(self) -> TopicSpec:
        """The control topic: one partition, compacted, so the latest record per key lives."""
        return TopicSpec(self.control, CONTROL_PARTITIONS, {**_COMMON, **_CONTROL})

    def snapshots(self, generation: int = 0) -> str:
        """The snapshot topic of `generation` (0: `{app_id}.snapshots`)."""
        if generation < 0:
            raise ValueError(f"generation must be >= 0, got {generation}")
        base = self.name(TopicKind.SNAPSHOTS)
        return base if generation == 0 else f"{base}.g{generation}"

    def snapshot_spec(self, generation: int) -> TopicSpec:
        """The spec of snapshot generation `generation`: like the snapshots topic."""
        return TopicSpec(
            self.snapshots(generation),
            self.partitions,
            {**_COMMON, **_CONFIGS[TopicKind.SNAPSHOTS]},
            at_least=True,
        )

    def generation_of(self, topic: str) -> int | None:
        """The generation n > 0 whose snapshot topic is `topic` (None: not one)."""
        found = re.fullmatch(re.escape(self.snapshots(0)) + r"\.g([1-9][0-9]*)", topic)
        return None if found is None else int(found.group(1))


def growth(layout: TopicLayout, existing: Mapping[str, int], partitions: int) -> dict[str, int]:
    """The partition count each per-partition topic of `layout`'s application must be grown
    to for `partitions` data partitions, given `existing` (topic → its partitions now): the
    data topics and every snapshot generation in `existing` to `partitions`, replies to
    `partitions × reply_lanes`. Topics already there are left out (growing is idempotent);
    the control topic and other topics are not touched. Raises ValueError when a data topic
    is missing, or when any of them has more partitions than asked (a topic never shrinks)."""
    wanted = {
        layout.name(kind): partitions * (layout.reply_lanes if kind is TopicKind.REPLIES else 1)
        for kind in TopicKind
    }
    missing = sorted(name for name in wanted if name not in existing)
    if missing:
        raise ValueError(f"not deployed: no topic {', '.join(missing)}")
    wanted |= {t: partitions for t in existing if layout.generation_of(t) is not None}
    over = {t: existing[t] for t, n in wanted.items() if existing[t] > n}
    if over:
        raise ValueError(
            f"cannot grow {layout.app_id} to {partitions} partitions: "
            + ", ".join(f"{t} has {n}" for t, n in sorted(over.items()))
            + " (a topic never shrinks)"
        )
    return {t: n for t, n in sorted(wanted.items()) if existing[t] < n}


def min_insync_replicas(replication: int, configured: int = 0) -> int:
    """`min.insync.replicas` for a topic of `replication` replicas: `configured` when set
    (> 0), else one fewer than the replicas, between 1 and 2 (3 replicas: 2, so one broker
    may be down while every acknowledged write is on two)."""
    if configured > 0:
        return configured
    return max(1, min(2, replication - 1))


def mismatches(
    spec: TopicSpec,
    partitions: int,
    config: Mapping[str, str],
    replication: int | None = None,
    expected_replication: int | None = None,
) -> list[str]:
    """Problems with an existing topic (its partition count, replicas and described configs)
    against `spec`; empty when it is usable. Checks the partition count (more than
    `spec.partitions` is fine when `spec.at_least`), the replication
    factor (when both are given), `min.insync.replicas` (when `spec` sets it),
    `cleanup.policy` and, for topics kept forever, `retention.ms`; a config missing from
    `config` counts as Kafka's default."""
    problems = []
    if partitions != spec.partitions and not (spec.at_least and partitions > spec.partitions):
        problems.append(f"{spec.name}: has {partitions} partitions, expected {spec.partitions}")
    if None not in (replication, expected_replication) and replication != expected_replication:
        problems.append(
            f"{spec.name}: has replication factor {replication}, expected {expected_replication}"
        )
    expected_isr = spec.config.get("min.insync.replicas")
    actual_isr = config.get("min.insync.replicas", "1")
    if expected_isr is not None and actual_isr != expected_isr:
        problems.append(
            f"{spec.name}: min.insync.replicas is {actual_isr}, expected {expected_isr}"
        )
    expected_policy = _policies(spec.config.get("cleanup.policy", _DEFAULT_CLEANUP))
    actual_policy = _policies(config.get("cleanup.policy", _DEFAULT_CLEANUP))
    if actual_policy != expected_policy:
        problems.append(
            f"{spec.name}: cleanup.policy is {','.join(sorted(actual_policy))}, "
            f"expected {','.join(sorted(expected_policy))}"
        )
    expected_retention = spec.config.get("retention.ms")
    retention = config.get("retention.ms", _DEFAULT_RETENTION_MS)
    if expected_retention == _FOREVER and retention != _FOREVER:
        problems.append(
            f"{spec.name}: retention.ms is {retention}, expected -1 (records kept forever)"
        )
    elif (
        expected_retention is not None
        and "compact" in expected_policy
        and retention != _FOREVER
        and int(retention) < int(expected_retention)
    ):
        problems.append(
            f"{spec.name}: retention.ms is {retention}, below the {expected_retention} "
            "the idempotency window needs"
        )
    return problems


def _policies(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())
