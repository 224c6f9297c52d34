"""Service settings, built in one place: explicit arguments > environment > defaults."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

__all__ = ["ENVIRONMENT", "Settings"]

ENVIRONMENT: Mapping[str, str] = {
    "app_id": "EVENTLEDGER_APP_ID",
    "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "partitions": "EVENTLEDGER_PARTITIONS",
    "batch_max_commands": "EVENTLEDGER_BATCH_MAX_COMMANDS",
    "batch_max_ms": "EVENTLEDGER_BATCH_MAX_MS",
    "recent_ids_per_aggregate": "EVENTLEDGER_RECENT_IDS_PER_AGGREGATE",
    "transaction_timeout_ms": "EVENTLEDGER_TRANSACTION_TIMEOUT_MS",
    "reply_lanes": "EVENTLEDGER_REPLY_LANES",
}
"""Field name → environment variable that may set it."""

_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
_T = TypeVar("_T", int, float, str)


@dataclass(frozen=True)
class Settings:
    """Validated settings. `app_id` prefixes every topic, transactional id and actor name,
    so it is limited to the characters Kafka allows in topic names."""

    app_id: str
    bootstrap_servers: str
    partitions: int = 4
    batch_max_commands: int = 1000
    batch_max_ms: float = 20.0
    recent_ids_per_aggregate: int = 16
    transaction_timeout_ms: int = 10_000
    reply_lanes: int = 1

    def __post_init__(self) -> None:
        if _APP_ID.fullmatch(self.app_id) is None:
            raise ValueError(
                f"app_id must be 1-200 letters, digits, '.', '_' or '-', got {self.app_id!r}"
            )
        if not self.bootstrap_servers.strip():
            raise ValueError("bootstrap_servers must not be empty")
        _at_least("partitions", self.partitions, 1)
        _at_least("batch_max_commands", self.batch_max_commands, 1)
        _at_least("recent_ids_per_aggregate", self.recent_ids_per_aggregate, 1)
        _at_least("transaction_timeout_ms", self.transaction_timeout_ms, 1)
        _at_least("reply_lanes", self.reply_lanes, 1)
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
        recent_ids_per_aggregate: int | None = None,
        transaction_timeout_ms: int | None = None,
        reply_lanes: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Each field from its explicit (non-None) argument, else its `ENVIRONMENT` variable
        in `environ` (default `os.environ`), else its default. Raises ValueError."""
        env = os.environ if environ is None else environ
        return cls(
            app_id=_pick(app_id, env, "app_id", str, "eventledger"),
            bootstrap_servers=_pick(
                bootstrap_servers, env, "bootstrap_servers", str, "127.0.0.1:9092"
            ),
            partitions=_pick(partitions, env, "partitions", int, 4),
            batch_max_commands=_pick(batch_max_commands, env, "batch_max_commands", int, 1000),
            batch_max_ms=_pick(batch_max_ms, env, "batch_max_ms", float, 20.0),
            recent_ids_per_aggregate=_pick(
                recent_ids_per_aggregate, env, "recent_ids_per_aggregate", int, 16
            ),
            transaction_timeout_ms=_pick(
                transaction_timeout_ms, env, "transaction_timeout_ms", int, 10_000
            ),
            reply_lanes=_pick(reply_lanes, env, "reply_lanes", int, 1),
        )


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


def _at_least(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}")
