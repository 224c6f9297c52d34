"""Topic names and configs. Every topic has the same partition count: commands, events,
snapshots and state are co-partitioned by aggregate id; replies and dlq follow suit so that a
partition number is valid everywhere."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["TopicKind", "TopicLayout", "TopicSpec", "mismatches"]

_DAY_MS: Final = 24 * 60 * 60 * 1000
_HOUR_MS: Final = 60 * 60 * 1000
_FOREVER: Final = "-1"
_DEFAULT_CLEANUP: Final = "delete"
_DEFAULT_RETENTION_MS: Final = str(7 * _DAY_MS)


class TopicKind(StrEnum):
    """The role of a topic; its name is `{app_id}.{kind}`."""

    COMMANDS = "commands"
    REPLIES = "replies"
    EVENTS = "events"
    SNAPSHOTS = "snapshots"
    STATE = "state"
    DLQ = "dlq"


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partition count and topic-level configs."""

    name: str
    partitions: int
    config: dict[str, str]


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
_CONFIGS: Final[Mapping[TopicKind, Mapping[str, str]]] = {
    TopicKind.COMMANDS: {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)},
    TopicKind.REPLIES: {"cleanup.policy": "delete", "retention.ms": str(_HOUR_MS)},
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

    def name(self, kind: TopicKind) -> str:
        """The topic name for `kind`."""
        return f"{self.app_id}.{kind}"

    def specs(self) -> list[TopicSpec]:
        """Every topic of the application, in `TopicKind` order."""
        return [
            TopicSpec(self.name(kind), self.partitions, {**_COMMON, **_CONFIGS[kind]})
            for kind in TopicKind
        ]


def mismatches(spec: TopicSpec, partitions: int, config: Mapping[str, str]) -> list[str]:
    """Problems with an existing topic (its partition count and described configs) against
    `spec`; empty when it is usable. Checks the partition count, `cleanup.policy` and, for
    topics kept forever, `retention.ms`; a config missing from `config` counts as Kafka's
    default."""
    problems = []
    if partitions != spec.partitions:
        problems.append(f"{spec.name}: has {partitions} partitions, expected {spec.partitions}")
    expected_policy = _policies(spec.config.get("cleanup.policy", _DEFAULT_CLEANUP))
    actual_policy = _policies(config.get("cleanup.policy", _DEFAULT_CLEANUP))
    if actual_policy != expected_policy:
        problems.append(
            f"{spec.name}: cleanup.policy is {','.join(sorted(actual_policy))}, "
            f"expected {','.join(sorted(expected_policy))}"
        )
    if spec.config.get("retention.ms") == _FOREVER:
        retention = config.get("retention.ms", _DEFAULT_RETENTION_MS)
        if retention != _FOREVER:
            problems.append(
                f"{spec.name}: retention.ms is {retention}, expected -1 (records kept forever)"
            )
    return problems


def _policies(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())
