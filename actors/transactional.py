"""The one transactional producer role: the partition actor, the control writer and the
shadow rebuild all write through ``TransactionalWriter``, with one retry policy and the error
taxonomy of ``actors.kafka``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer

from actors.kafka import (
    AbortableError,
    FatalError,
    FencedError,
    KafkaClientError,
    classify,
    producer_config,
    retrying,
)
from topology.settings import Settings

__all__ = ["CALL_ATTEMPTS", "INIT_ATTEMPTS", "QUICK_ASK_SECONDS", "TransactionalWriter"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _TransactionalProducer(Protocol):
    """The part of ``confluent_kafka.Producer`` a ``TransactionalWriter`` uses."""

    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int, **kw: Any
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def list_topics(self, topic: str, timeout: float) -> Any: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


INIT_ATTEMPTS = 40
"""``init_transactions`` is retried this often while retriable (a broker just started, the
transaction coordinator still loading): the one policy of every transactional writer."""

CALL_ATTEMPTS = 5
"""Every other producer call (begin, commit, abort) is retried this often while retriable. A
timed-out commit or abort is never called again: ``classify`` makes it fatal, not retriable."""

QUICK_ASK_SECONDS = 0.15
"""How long one quick ask for the producer id waits (``TransactionalWriter(quick_asks=)``):
the broker answers in tens of ms, while librdkafka waits a fixed 500 ms before it asks
again after a refusal (the broker still aborting the predecessor's transaction)."""

_METADATA_SECONDS = 10.0
"""How long a metadata refresh for a topic that grew may take."""

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
    - ``quick_asks`` > 0 (a takeover, where every millisecond is an answer gap): the id is
      first asked for by up to that many producers, each asking once and waiting
      ``QUICK_ASK_SECONDS``, a refused or slow one destroyed (not closed: ``close`` would
      abort, and be refused in turn) before the next is made; then by the one policy. Each
      granted ask bumps the epoch, so the last producer made is the one that holds the id.
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
        quick_asks: int = 0,
    ) -> None:
        self.transactional_id = transactional_id
        self.quick_asks = quick_asks
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
            producer = self._asked_quickly()
            if producer is None:
                producer = self._factory(self._config)
                self._call("init_transactions", producer.init_transactions, self.init_timeout)
            self._producer = producer
            log.info("%s: transactional producer ready", self.transactional_id)
        return self._producer

    def _asked_quickly(self) -> _TransactionalProducer | None:
        """A producer granted the id within ``quick_asks`` quick asks, else None."""
        for _ in range(self.quick_asks):
            producer: _TransactionalProducer = self._factory(self._config)
            try:
                producer.init_transactions(QUICK_ASK_SECONDS)
                return producer
            except KafkaException as e:
                error = classify(e, during="init_transactions")
                if isinstance(error, (FatalError, FencedError)):  # a timeout is retriable
                    raise self._fail(error) from e
            del producer  # destroyed: its pending ask dies with it
        return None

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
        """One record into the open transaction; a full queue is waited on, then abortable.
        A partition the producer does not know yet (its topic grew: a repartition) is looked
        up once, then produced to; still unknown, the error is classified as any other."""
        producer = self.producer
        looked_up = False
        for _ in range(_FULL_QUEUE_POLLS):
            try:
                producer.produce(topic, value, key, partition, **kwargs)
                return
            except BufferError:
                pass  # the queue is full: serve delivery reports, then try again
            except KafkaException as e:
                if e.args[0].code() == KafkaError._UNKNOWN_PARTITION and not looked_up:
                    looked_up = True
                    self._learn_partitions(producer, topic)
                    continue
                raise self._fail(classify(e, during="produce")) from e
            producer.poll(0.1)
        raise AbortableError(f"produce: the producer queue stayed full ({topic}[{partition}])")

    def _learn_partitions(self, producer: _TransactionalProducer, topic: str) -> None:
        """Refresh the producer's metadata of ``topic`` (a metadata request updates
        librdkafka's cache), so a partition added since it was created can be produced to."""
        log.info("%s: %s has new partitions; refreshing its metadata", self.transactional_id, topic)
        try:
            producer.list_topics(topic, timeout=_METADATA_SECONDS)
        except KafkaException as e:
            raise self._fail(classify(e, during="produce")) from e

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
