"""Service settings, built in one place: explicit arguments > environment > defaults."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar

__all__ = ["DAY_MS", "DEFAULT_STATE_DIR", "ENVIRONMENT", "Settings"]

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
}
"""Field name → environment variable that may set it."""

_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
DAY_MS: Final = 24 * 60 * 60 * 1000
DEFAULT_STATE_DIR: Final = "~/.cache/eventledger/state"
_T = TypeVar("_T", int, float, str)


@dataclass(frozen=True)
class Settings:
    """Validated settings. `app_id` prefixes every topic, transactional id and actor name,
    so it is limited to the characters Kafka allows in topic names. A command id is
    deduplicated for `idempotency_window_ms` after its first attempt (default 24 h); the
    idempotency memory of each partition lives under `state_dir` on the actor's node."""

    app_id: str
    bootstrap_servers: str
    partitions: int = 4
    batch_max_commands: int = 1000
    batch_max_ms: float = 20.0
    idempotency_window_ms: int = DAY_MS
    transaction_timeout_ms: int = 10_000
    reply_lanes: int = 1
    state_dir: str = DEFAULT_STATE_DIR

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
            idempotency_window_ms=_pick(
                idempotency_window_ms, env, "idempotency_window_ms", int, DAY_MS
            ),
            transaction_timeout_ms=_pick(
                transaction_timeout_ms, env, "transaction_timeout_ms", int, 10_000
            ),
            reply_lanes=_pick(reply_lanes, env, "reply_lanes", int, 1),
            state_dir=_pick(state_dir, env, "state_dir", str, DEFAULT_STATE_DIR),
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
