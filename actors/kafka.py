"""A thin, typed layer over confluent-kafka: explicit client configs and our own errors.

Every producer in the system uses the Java-compatible ``murmur2_random`` partitioner, every
consumer of actor output reads ``read_committed`` with auto commit off. ``TransactionalWriter``
is the one transactional producer role: the partition actor, the control writer and the shadow
rebuild all write through it, with one retry policy and one error taxonomy.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer

from topology.settings import Settings

__all__ = [
    "CALL_ATTEMPTS",
    "INIT_ATTEMPTS",
    "LIBRDKAFKA_LOG",
    "AbortableError",
    "FatalError",
    "FencedError",
    "KafkaClientError",
    "RetriableError",
    "TransactionalWriter",
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
        # per command -40 %, round trip at 1,000/s lower at p50 and p99 (README, Performance).
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


class _TransactionalProducer(Protocol):
    """The part of ``confluent_kafka.Producer`` a ``TransactionalWriter`` uses."""

    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int, **kw: Any
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


INIT_ATTEMPTS = 40
"""``init_transactions`` is retried this often while retriable (a broker just started, the
transaction coordinator still loading): the one policy of every transactional writer."""

CALL_ATTEMPTS = 5
"""Every other producer call (begin, commit, abort) is retried this often while retriable. A
timed-out commit or abort is never called again: ``classify`` makes it fatal, not retriable."""

_FULL_QUEUE_POLLS = 50
"""A produce that meets a full queue serves delivery reports (0.1 s each) this often before
the transaction is given up as abortable."""


class TransactionalWriter:
    """The one transactional producer role: every transactional writer goes through it.

    - The producer is created lazily, on first use, with ``init_transactions`` retried by one
      policy (``INIT_ATTEMPTS``); creating it fences any earlier producer of the same id.
    - Every error comes out classified (``RetriableError``, ``AbortableError``, ``FatalError``,
      ``FencedError``); a ``BufferError`` from a full queue becomes ``AbortableError``.
    - ``with writer.transaction():`` commits, or aborts when the body raises.
    - After a fatal error the producer is dropped and the next use creates a new one (a new
      epoch, which also fences a late commit or abort of the dead one). After ``FencedError``
      the writer refuses every call: another writer owns the id, this one must stop.
    - ``renew()`` replaces the producer at once (a new epoch): after a failed produce the
      idempotent producer's sequence state is spoiled, and only an epoch bump clears it.
    - A fence met by a transaction older than ``transaction.timeout.ms`` is the broker's own
      abort, not a takeover: it is fatal (re-create) unless ``stale_fence_is_fatal=False``,
      which keeps every fence final (the partition actor: a fence stops it, and only its
      supervisor, which knows whether a successor exists, replaces it).
    """

    def __init__(
        self,
        settings: Settings,
        transactional_id: str,
        *,
        end_timeout: float = 30.0,
        init_timeout: float = 30.0,
        factory: Callable[[dict[str, Any]], Any] = Producer,
        stale_fence_is_fatal: bool = True,
    ) -> None:
        self.transactional_id = transactional_id
        self.end_timeout = end_timeout
        self.init_timeout = init_timeout
        self.recreations = 0
        self.renewals = 0
        self.stale_fence_is_fatal = stale_fence_is_fatal
        self.fenced: FencedError | None = None
        self._config = producer_config(settings, transactional_id=transactional_id)
        self._factory = factory
        self._producer: _TransactionalProducer | None = None
        self._open = False  # a transaction is begun and not yet ended
        self._begun_at = 0.0
        self._timeout = settings.transaction_timeout_ms / 1000.0

    # -- the producer's lifecycle ----------------------------------------------------------

    @property
    def producer(self) -> _TransactionalProducer:
        """The live producer, created (and its id fenced) on first use."""
        if self.fenced is not None:
            raise FencedError(f"{self.transactional_id}: fenced earlier ({self.fenced})")
        if self._producer is None:
            producer = self._factory(self._config)
            self._call("init_transactions", producer.init_transactions, self.init_timeout)
            self._producer = producer
            log.info("%s: transactional producer ready", self.transactional_id)
        return self._producer

    def open(self) -> None:
        """Create the producer now (fencing the id's earlier producers) if not yet done."""
        self.producer  # noqa: B018 - the property creates it

    def reset(self) -> None:
        """Drop the producer: the next use creates a new one with ``init_transactions``."""
        if self._producer is not None:
            self.recreations += 1
            log.warning("%s: dropping the producer; re-created on next use", self.transactional_id)
        self._producer = None
        self._open = False

    def renew(self) -> None:
        """Replace the producer now: a new one, ``init_transactions`` (a new epoch)."""
        self._producer = None
        self._open = False
        self.renewals += 1
        self.open()

    def close(self) -> None:
        """Drop the producer (an open transaction is left to the broker to abort)."""
        self._producer = None
        self._open = False

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[TransactionalWriter]:
        """Begin; run the body; commit. When anything raises, abort (or, after a fatal error,
        drop the producer) and re-raise; the caller's in-memory state is its own to keep."""
        self.begin()
        try:
            yield self
            self.commit()
        except BaseException:
            self._end_failed()
            raise

    def begin(self) -> None:
        self._call("begin", self.producer.begin_transaction)
        self._open = True
        self._begun_at = time.monotonic()

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        **kwargs: Any,
    ) -> None:
        """One record into the open transaction; a full queue is waited on, then abortable."""
        producer = self.producer
        for _ in range(_FULL_QUEUE_POLLS):
            try:
                producer.produce(topic, value, key, partition, **kwargs)
                return
            except BufferError:
                pass  # the queue is full: serve delivery reports, then try again
            except KafkaException as e:
                raise self._fail(classify(e, during="produce")) from e
            producer.poll(0.1)
        raise AbortableError(f"produce: the producer queue stayed full ({topic}[{partition}])")

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports."""
        try:
            self.producer.poll(timeout)
        except KafkaException as e:
            raise self._fail(classify(e, during="produce")) from e

    def commit(self) -> None:
        """Commit the open transaction; raises classified (``AbortableError``: the caller
        aborts, as ``transaction()`` does)."""
        self._call("commit", self.producer.commit_transaction, self.end_timeout)
        self._open = False

    def abort(self) -> None:
        """Abort the open transaction; a failed abort drops the producer (and raises)."""
        self._open = False
        self._call("abort", self.producer.abort_transaction, self.end_timeout)

    def _end_failed(self) -> None:
        """End a transaction whose body or commit failed: abort it, or when the producer is
        dead (fatal, or the abort itself failed) drop it so the next use re-creates it."""
        if self._producer is None or self.fenced is not None or not self._open:
            return
        try:
            self.abort()
        except KafkaClientError as e:
            log.warning("%s: abort failed (%s)", self.transactional_id, e)
            if not isinstance(e, FencedError):
                self.reset()

    def _call(self, during: str, fn: Callable[..., T], *args: Any) -> T:
        """A producer call retried while retriable; what still fails comes out classified,
        and a fatal error drops (or a fence retires) the producer."""
        attempts = INIT_ATTEMPTS if during == "init_transactions" else CALL_ATTEMPTS
        try:
            return retrying(during, fn, *args, attempts=attempts, who=self.transactional_id)
        except KafkaException as e:
            raise self._fail(classify(e, during=during)) from e

    def _fail(self, error: KafkaClientError) -> KafkaClientError:
        stale = self.stale_fence_is_fatal and self._outlived_timeout()
        if isinstance(error, FencedError) and stale:
            # The broker aborts a transaction older than transaction.timeout.ms and bumps
            # the epoch, which librdkafka reports as a fence: this writer is not replaced.
            error = FatalError(
                f"{error} (the transaction outlived transaction.timeout.ms "
                f"{self._timeout:.1f} s: the broker aborted it)",
                error.error,
            )
        if isinstance(error, FencedError):
            self.fenced = error
            self._producer = None
            self._open = False
        elif isinstance(error, FatalError):
            self.reset()
        return error

    def _outlived_timeout(self) -> bool:
        return self._open and time.monotonic() - self._begun_at > self._timeout
