"""A thin, typed layer over confluent-kafka: explicit client configs and our own errors.

Every producer in the system uses the Java-compatible ``murmur2_random`` partitioner, every
consumer of actor output reads ``read_committed`` with auto commit off. Every Kafka error comes
out of ``classify`` as one of our kinds: retriable, abortable, fatal, fenced.
(``actors.transactional.TransactionalWriter`` is the one transactional producer role.)

Every client config built here carries ``logger``: librdkafka's own log lines (a refused
connection, a broker gone) go into Python logging as ``actors.kafka.librdkafka`` records, served
when the client is polled, never printed straight to stderr by librdkafka's default logger.

A Kafka call that may raise is made outside ``except`` blocks where the code allows it:
confluent-kafka (2.16) leaks the exception being handled when one of its calls raises
``KafkaException`` there, and with it the frames of its traceback (and every client they hold).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException

from topology.settings import Settings

__all__ = [
    "LIBRDKAFKA_LOG",
    "AbortableError",
    "FatalError",
    "FencedError",
    "KafkaClientError",
    "RetriableError",
    "admin_config",
    "bootstrap_config",
    "classify",
    "connection_config",
    "consumer_config",
    "producer_config",
    "retrying",
]

log = logging.getLogger(__name__)

LIBRDKAFKA_LOG = logging.getLogger(f"{__name__}.librdkafka")
"""Where librdkafka's log lines go (the ``logger`` of every client config built here)."""

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

    A commit or abort that timed out, or whose connection broke, is fatal: the request may
    still land, and librdkafka has no KIP-890 protection, so a late end-of-transaction could
    otherwise end the wrong transaction (re-creating the producer bumps the epoch instead).
    """
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    text = f"{during}: {error.str() if error else exc}"
    if error is None:
        return FatalError(text)
    timed_out = error.code() in (
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TRANSPORT,
    )
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


def retrying(during: str, fn: Callable[..., T], *args: Any, attempts: int = 5, who: str = "") -> T:
    """``fn(*args)``, called again (after a pause growing to 0.5 s) while Kafka calls its
    error retriable, at most ``attempts`` times. ``during`` names the operation exactly as
    ``classify`` knows it ("commit", "abort", ...: a timed-out commit or abort is never
    retried); ``who`` only labels the log. Raises the last ``KafkaException`` as is: callers
    classify it (``classify``) or inspect its code."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args)
        except KafkaException as e:
            if attempt == attempts or not isinstance(classify(e, during=during), RetriableError):
                raise
            log.info("%s%s: %s; retrying", f"{who} " if who else "", during, e)
            time.sleep(min(0.05 * attempt, 0.5))
    raise AssertionError("unreachable")


def bootstrap_config(bootstrap: str) -> dict[str, Any]:
    """A client of a bare bootstrap address (plain text, no application: the broker probe,
    the bench's peers, tests), its librdkafka log lines routed like every other client's."""
    return {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG}


def connection_config(settings: Settings) -> dict[str, Any]:
    """What every client of the application shares: the bootstrap servers, a ``client.id``
    (the application id unless given), the pass-through properties (SASL, SSL, ...) and
    librdkafka's log lines routed into Python logging (``LIBRDKAFKA_LOG``)."""
    return {
        "client.id": settings.app_id,
        **settings.kafka.client_config(),
        **bootstrap_config(settings.bootstrap_servers),
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    """An admin client of the application's cluster."""
    return {"log_level": 3, **connection_config(settings)}


def producer_config(settings: Settings, *, transactional_id: str | None = None) -> dict[str, Any]:
    """A producer: idempotent, our partitioner; transactional when given an id. Pass-through
    properties may tune it (``linger.ms``, ...) but never touch the guarantees (``RESERVED``)."""
    config: dict[str, Any] = {
        "partitioner": PARTITIONER,
        "enable.idempotence": True,
        "acks": "all",
        # 5 ms of batching: with many commands in flight, fewer and larger produce requests
        # (the broker's CPU per request is the bottleneck). Measured with `python -m bench
        # --phases e2e,latency` against 0: e2e +25-37 % (1 client x 256 in flight), broker CPU
        # per command -40 %, round trip at 1,000/s lower at p50 and p99 (docs/performance.md).
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "socket.nagle.disable": True,
        "log_level": 3,
        **connection_config(settings),
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
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "socket.nagle.disable": True,
        "log_level": 3,
        **connection_config(settings),
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    config.update(extra)
    return config
