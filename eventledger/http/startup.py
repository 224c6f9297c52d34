"""What every HTTP process does at start, whichever way it serves (``eventledger.http.serving``):
its own ``BankClient``, its readiness check, its rate limiter, and the routes bound to them
(``bind_replica``); and what it lets go at its end. Also the TLS files an API serves with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from actors.kafka import admin_config
from eventledger.bank import BankClient
from eventledger.http.auth import TokenTable
from eventledger.http.limits import Limits, RateLimiter
from eventledger.http.replica import Replica, bind_replica
from eventledger.http.routes_health import CachedReadiness
from topology.settings import Settings

__all__ = ["INSECURE_WARNING", "Tls", "close_replica", "open_replica"]

log = logging.getLogger(__name__)

INSECURE_WARNING = (
    "!!! INSECURE: the eventledger HTTP API runs WITHOUT AUTHENTICATION (--insecure-dev): "
    "anyone who reaches it can move money. For a local demo only. !!!"
)


@dataclass(frozen=True)
class Tls:
    """The certificate chain and key files the API serves HTTPS with."""

    cert: Path
    key: Path

    def check(self) -> None:
        """ValueError naming a file that cannot be read."""
        for what, path in (("certificate", self.cert), ("key", self.key)):
            if not path.is_file():
                raise ValueError(f"the TLS {what} {path} is not a readable file")


class _Readiness:
    """Every partition runs (as the coordinator saw it), and Kafka and Ray answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin = AdminClient({**admin_config(settings), "log_level": 0})

    def __call__(self) -> list[str]:
        import ray

        from actors.deployment import find_coordinator
        from eventledger.report import not_running

        problems: list[str] = []
        try:
            self._admin.list_topics(timeout=3)
        except KafkaException as e:
            problems.append(f"Kafka does not answer: {e.args[0].str()}")
        try:
            coordinator = find_coordinator(self.settings.app_id)
            if coordinator is None:
                problems.append("the service is not deployed")
            else:
                stopped = not_running(ray.get(coordinator.status.remote(), timeout=5))
                if stopped:
                    problems.append(f"partitions not running: {stopped}")
        except Exception as e:  # Ray does not answer in time
            problems.append(f"Ray does not answer: {type(e).__name__}")
        return problems


def open_replica(
    settings: Settings, tokens: TokenTable, command_timeout: float, limits: Limits
) -> Replica:
    """This process's replica, bound to its routes: its own client (the API tier's Kafka
    properties, ``settings`` as ``Settings.for_api`` made them), the first readiness check
    started in the background, and the per-token rate limiter."""
    if tokens.insecure:
        for _ in range(3):
            log.warning(INSECURE_WARNING)
    client = BankClient(settings, timeout=command_timeout)
    readiness = CachedReadiness(_Readiness(settings))
    readiness()  # the first check starts now, in the background
    replica = Replica(
        client,
        tokens,
        command_timeout,
        readiness,
        RateLimiter(limits.rate_per_token, limits.burst_per_token),
        limits,
    )
    bind_replica(replica)
    return replica


def close_replica(replica: Replica) -> None:
    """Let go of ``replica``: calls not begun never run (running ones end by their
    timeouts), and its client closes."""
    replica.executor.shutdown(wait=False, cancel_futures=True)
    replica.client.close()
