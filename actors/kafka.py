"""A thin, typed layer over confluent-kafka: explicit client configs and our own errors.

Every producer in the system uses the Java-compatible ``murmur2_random`` partitioner, every
consumer of actor output reads ``read_committed`` with auto commit off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException

from topology.settings import Settings

__all__ = [
    "AbortableError",
    "FatalError",
    "FencedError",
    "KafkaClientError",
    "RetriableError",
    "classify",
    "consumer_config",
    "producer_config",
    "retrying",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

PARTITIONER = "murmur2_random"
# Transient broker states that librdkafka does not always flag as retriable (seen right
# after a broker start: the group coordinator is still loading).
_TRANSIENT_CODES = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)
# A record the broker (or librdkafka, before sending) will not take: the transaction must be
# aborted, and the partition's abort policy decides whether to retry, isolate or set aside.
_RECORD_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.POLICY_VIOLATION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._QUEUE_FULL,
    }
)
_FENCED_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


class KafkaClientError(Exception):
    """A Kafka error, classified by what the caller must do about it."""

    def __init__(self, message: str, error: KafkaError | None = None) -> None:
        super().__init__(message)
        self.error = error


class RetriableError(KafkaClientError):
    """Call the same operation again."""


class AbortableError(KafkaClientError):
    """Abort the transaction, put state back, rewind the consumer, retry the batch."""


class FatalError(KafkaClientError):
    """The producer is dead: re-create it and restore, or stop."""


class FencedError(FatalError):
    """Another producer took over this transactional id: this writer must stop for good."""


def classify(exc: KafkaException, *, during: str) -> KafkaClientError:
    """Turn a confluent-kafka exception into one of our three kinds.

    A timed-out commit or abort is fatal: librdkafka has no KIP-890 protection, so a late
    end-of-transaction could otherwise end the wrong transaction.
    """
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    text = f"{during}: {error.str() if error else exc}"
    if error is None:
        return FatalError(text)
    timed_out = error.code() in (KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT)
    if error.code() in _FENCED_CODES:
        return FencedError(text, error)
    if error.fatal():
        return FatalError(text, error)
    if timed_out and during in ("commit", "abort"):
        return FatalError(f"{text} (timed out ending a transaction)", error)
    if error.txn_requires_abort() or (during == "produce" and error.code() in _RECORD_CODES):
        return AbortableError(text, error)
    if error.retriable() or error.code() in _TRANSIENT_CODES:
        return RetriableError(text, error)
    return FatalError(text, error)


def retrying(during: str, fn: Callable[..., T], *args: Any, attempts: int = 5) -> T:
    """``fn(*args)``, called again (after a pause growing to 0.5 s) while Kafka calls its
    error retriable, at most ``attempts`` times. Raises the last ``KafkaException`` as is:
    callers classify it (``classify``) or inspect its code."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args)
        except KafkaException as e:
            if attempt == attempts or not isinstance(classify(e, during=during), RetriableError):
                raise
            log.info("%s: %s; retrying", during, e)
            time.sleep(min(0.05 * attempt, 0.5))
    raise AssertionError("unreachable")


def producer_config(settings: Settings, *, transactional_id: str | None = None) -> dict[str, Any]:
    """A producer: idempotent, our partitioner; transactional when given an id."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "partitioner": PARTITIONER,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "socket.nagle.disable": True,
        "log_level": 3,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = settings.transaction_timeout_ms
        # A new transaction that touches a partition whose previous transaction's markers
        # are still being written gets CONCURRENT_TRANSACTIONS and is retried after this
        # backoff; librdkafka's default (100 ms) would put that on every busy batch.
        config["retry.backoff.ms"] = 2
        config["retry.backoff.max.ms"] = 10
    return config


def consumer_config(settings: Settings, *, group_id: str, **extra: Any) -> dict[str, Any]:
    """A consumer for manual ``assign``: read_committed, no auto commit, no offset store."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "socket.nagle.disable": True,
        "log_level": 3,
    }
    config.update(extra)
    return config
