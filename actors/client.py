"""``LedgerClient``: send a command, await its reply (sync or asyncio), query an account.

One reply consumer per client, on one reply lane (``reply_to`` in every command: the replies
partitions ``TopicLayout.reply_partitions(lane)``, one per data partition), started once and
positioned at the end before the first send; replies are routed to waiters by (command id,
account id), so two clients' replies never cross. A command id is executed at most once
within the service's idempotency window (24 h by default) counted from its first attempt;
``execute`` re-sends the same id with the same first-attempt time until the reply comes, and
a retry past the window is refused as ``expired``, never executed again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from opentelemetry import trace

from actors import messaging, tracing
from actors.kafka import consumer_config, producer_config
from actors.records import poll_fetched
from actors.watermarks import watermarks
from topology.codec.commands import encode_command
from topology.codec.replies import decode_answer
from topology.envelopes import Reply
from topology.history import HistoryPage, PointInTime
from topology.names import Names
from topology.partitioner import partition_for
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["LedgerClient", "OutcomeUnknownError", "ReplyTimeoutError", "now_ms"]

_MAX_RETRY_INTERVAL = 8.0

log = logging.getLogger(__name__)


class OutcomeUnknownError(TimeoutError):
    """No reply in time, or the command may not have reached the broker: whether it was
    executed is unknown. Retry with the same ``command_id`` and ``first_attempt_ms``: the
    service executes a command id at most once within its idempotency window."""

    def __init__(self, message: str, *, command_id: str, first_attempt_ms: int) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.first_attempt_ms = first_attempt_ms


class ReplyTimeoutError(OutcomeUnknownError):
    """No reply before the caller's timeout, after every retry."""


_Key = tuple[str, str]  # (command id, aggregate id): how a reply finds its waiter


class LedgerClient:
    """A thread-safe client of one application. Close it (or use ``with``) when done.
    ``timeout`` is the default seconds ``execute`` waits for a reply (re-sending meanwhile);
    ``retry_interval`` the first pause before a re-send (it doubles, up to 8 s)."""

    def __init__(
        self,
        settings: Settings,
        *,
        reply_lane: int | None = None,
        timeout: float = 30.0,
        retry_interval: float = 1.0,
    ) -> None:
        if retry_interval <= 0:
            raise ValueError(f"retry_interval must be > 0, got {retry_interval}")
        self.settings = settings
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.layout = TopicLayout.of(settings)
        self._commands = self.layout.name(TopicKind.COMMANDS)
        self._server = messaging.server(settings.bootstrap_servers)
        self.reply_lane = (
            reply_lane if reply_lane is not None else random.randrange(settings.reply_lanes)
        )
        self._pending: dict[_Key, list[Future[Reply]]] = {}
        self._id_prefix = os.urandom(8).hex()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._producer = Producer(producer_config(self.settings))
        self._consumer = Consumer(
            consumer_config(settings, group_id=Names.of(settings).group("client", unique=True))
        )
        replies = self.layout.name(TopicKind.REPLIES)
        start = []
        for p in self.layout.reply_partitions(self.reply_lane):
            _, high = watermarks(self._consumer, TopicPartition(replies, p))
            start.append(TopicPartition(replies, p, high))
        self._consumer.assign(start)
        self._io = threading.Thread(target=self._serve, name="ledger-client-io", daemon=True)
        self._io.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush what was sent, stop the reply consumer; pending waiters get an error."""
        if self._closed.is_set():
            return
        self._producer.flush(10)
        self._closed.set()
        self._io.join(5)
        self._consumer.close()
        with self._lock:
            pending, self._pending = self._pending, {}
        for futures in pending.values():
            for f in futures:
                if not f.done():
                    f.set_exception(RuntimeError("client closed before the reply came"))

    # -- commands --------------------------------------------------------------------------

    def send(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        first_attempt_ms: int | None = None,
    ) -> Future[Reply]:
        """Produce a command once and return a future of its reply. The future fails with
        ``OutcomeUnknownError`` when the broker did not acknowledge the command (it may still
        have stored it); ``execute`` re-sends instead."""
        command_id = command_id or self.new_command_id()
        first = first_attempt_ms if first_attempt_ms is not None else now_ms()
        future = self._register(command_id, aggregate_id)
        self._send(
            aggregate_id,
            command,
            command_id=command_id,
            expected_version=expected_version,
            first_attempt_ms=first,
            future=future,
        )
        return future

    def new_command_id(self) -> str:
        """A command id unique across clients: a random per-client prefix and a counter."""
        return f"{self._id_prefix}-{next(self._ids)}"

    def execute(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        first_attempt_ms: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send, re-sending the same command id with the same first-attempt time (backing
        off) until its reply comes; ``ReplyTimeoutError`` after ``timeout`` seconds. To retry
        from elsewhere after that, pass the error's ``command_id`` and ``first_attempt_ms``."""
        retries = self._retries(
            aggregate_id,
            command,
            command_id=command_id,
            expected_version=expected_version,
            first_attempt_ms=first_attempt_ms,
            timeout=timeout,
        )
        try:
            while True:
                try:
                    return retries.future.result(retries.send())
                except TimeoutError:
                    if retries.over():
                        raise retries.timed_out() from None
        finally:
            retries.forget()

    async def execute_async(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        first_attempt_ms: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """The asyncio form of ``execute``."""
        retries = self._retries(
            aggregate_id,
            command,
            command_id=command_id,
            expected_version=expected_version,
            first_attempt_ms=first_attempt_ms,
            timeout=timeout,
        )
        waiting = asyncio.wrap_future(retries.future)
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=retries.send())
                if done:
                    return waiting.result()
                if retries.over():
                    raise retries.timed_out()
        finally:
            retries.forget()

    def _retries(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None,
        expected_version: int | None,
        first_attempt_ms: int | None,
        timeout: float | None,
    ) -> _Retries:
        command_id = command_id or self.new_command_id()
        wait = timeout or self.timeout
        return _Retries(
            client=self,
            aggregate_id=aggregate_id,
            command=command,
            command_id=command_id,
            expected_version=expected_version,
            first_attempt_ms=first_attempt_ms if first_attempt_ms is not None else now_ms(),
            future=self._register(command_id, aggregate_id),
            wait=wait,
            deadline=time.monotonic() + wait,
            pause=self.retry_interval,
        )

    def _register(self, command_id: str, aggregate_id: str) -> Future[Reply]:
        if self._closed.is_set():
            raise RuntimeError("the client is closed")
        future: Future[Reply] = Future()
        with self._lock:
            self._pending.setdefault((command_id, aggregate_id), []).append(future)
        return future

    def _send(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str,
        expected_version: int | None,
        first_attempt_ms: int,
        future: Future[Reply] | None,
    ) -> None:
        """One attempt. A delivery failure fails ``future`` when given (else the caller's
        loop re-sends); a full local queue is an unknown outcome as well."""
        key = aggregate_id.encode()
        partition = partition_for(key, self.settings.partitions)
        value = encode_command(
            aggregate_id,
            command,
            command_id=command_id,
            expected_version=expected_version,
            reply_to=self.reply_lane,
            first_attempt_ms=first_attempt_ms,
        )
        target = (command_id, aggregate_id, first_attempt_ms, future)
        if not tracing.enabled():  # no SDK: pass on the caller's trace, if it has one
            self._produce(target, key, value, partition, tracing.current_headers())
            return
        with tracing.tracer().start_as_current_span(
            f"send {self._commands}",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                **messaging.attributes(
                    messaging.Operation.SEND,
                    "send",
                    self._commands,
                    partition,
                    key=aggregate_id,
                    server_attributes=self._server,
                ),
                "eventledger.command_id": command_id,
                "eventledger.aggregate_id": aggregate_id,
                "eventledger.command_type": type(command).__name__,
                "eventledger.partition": partition,
            },
        ):
            self._produce(target, key, value, partition, tracing.headers_from_context())

    def _produce(
        self,
        target: tuple[str, str, int, Future[Reply] | None],
        key: bytes,
        value: bytes,
        partition: int,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        produce: Callable[..., None] = self._producer.produce  # headers: (str, bytes)
        try:
            produce(
                self._commands,
                value,
                key,
                partition,
                on_delivery=lambda err, _msg: self._delivered(target, err),
                headers=headers,
            )
        except BufferError:
            self._producer.poll(0.1)
            self._delivered(target, KafkaError(KafkaError._QUEUE_FULL))

    def _timed_out(self, command_id: str, first_attempt_ms: int, wait: float) -> ReplyTimeoutError:
        return ReplyTimeoutError(
            f"no reply for command {command_id} in {wait:.1f}s: outcome unknown; retry with "
            f"the same command id and first_attempt_ms={first_attempt_ms}",
            command_id=command_id,
            first_attempt_ms=first_attempt_ms,
        )

    # -- queries ---------------------------------------------------------------------------

    def partition_of(self, aggregate_id: str) -> int:
        return partition_for(aggregate_id.encode(), self.settings.partitions)

    def get_account(self, aggregate_id: str, timeout: float = 30.0) -> dict[str, Any] | None:
        """The committed public view of an account, asked of the actor that owns it."""
        import ray

        from actors.ray_state import partition_actor

        actor = partition_actor(self.settings.app_id, self.partition_of(aggregate_id))
        view = ray.get(actor.get.remote(aggregate_id), timeout=timeout)
        return None if view is None else msgspec.to_builtins(view)

    def history(
        self, aggregate_id: str, *, after_version: int = 0, limit: int = 100, timeout: float = 30.0
    ) -> HistoryPage:
        """A page of the account's committed events after ``after_version`` (at most
        ``limit``, up to 1,000), each with its resulting view; ``next_after`` pages on. Asked
        of the partition's history index (its cost grows with the account's own events);
        raises ``HistoryBehindError`` when the index cannot catch up in time."""
        import ray

        from actors.history import history_actor

        index = history_actor(self.settings.app_id, self.partition_of(aggregate_id))
        page: HistoryPage = _unwrap(
            ray.get, index.history.remote(aggregate_id, after_version, limit), timeout
        )
        return page

    def state_at(
        self, aggregate_id: str, at: datetime | int, *, timeout: float = 30.0
    ) -> PointInTime | None:
        """The account as committed at time ``at`` (a datetime; naive means UTC) or after its
        event number ``at`` (an int: a version); None when it did not exist then."""
        import ray

        from actors.history import history_actor

        index = history_actor(self.settings.app_id, self.partition_of(aggregate_id))
        if isinstance(at, datetime):
            stamp = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            ref = index.state_at.remote(aggregate_id, at_ms=int(stamp.timestamp() * 1000))
        else:
            ref = index.state_at.remote(aggregate_id, version=at)
        found: PointInTime | None = _unwrap(ray.get, ref, timeout)
        return found

    # -- io thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        consumer = self._consumer
        while not self._closed.is_set():
            self._producer.poll(0)
            for msg in poll_fetched(consumer, 0.05):
                self._answer(msg)

    def _answer(self, msg: Any) -> None:
        """Complete the futures waiting for the reply in ``msg``; skip anything else."""
        error, value = msg.error(), msg.value()
        if error is not None:
            log.warning("reply consumer: %s", error.str())
            return
        if value is None:
            return
        try:
            reply = decode_answer(value)
        except Exception:
            log.warning("undecodable reply at offset %d", msg.offset())
            return
        if reply is None:  # an id in flight (the id memory's entry): not an answer
            return
        with self._lock:
            futures = self._pending.pop((reply.command_id, reply.aggregate_id), [])
        for f in futures:
            if not f.done():
                f.set_result(reply)

    def _delivered(
        self, target: tuple[str, str, int, Future[Reply] | None], err: KafkaError | None
    ) -> None:
        command_id, aggregate_id, first_attempt_ms, future = target
        if err is None:
            return
        log.info("command %s on %s not acknowledged: %s", command_id, aggregate_id, err.str())
        if future is None or future.done():
            return
        self._forget((command_id, aggregate_id), future)
        future.set_exception(
            OutcomeUnknownError(
                f"command {command_id} may not have reached Kafka ({err.str()}): outcome "
                f"unknown; retry with the same command id and first_attempt_ms="
                f"{first_attempt_ms}",
                command_id=command_id,
                first_attempt_ms=first_attempt_ms,
            )
        )

    def _forget(self, key: _Key, future: Future[Reply]) -> None:
        with self._lock:
            waiting = self._pending.get(key, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._pending.pop(key, None)


@dataclass
class _Retries:
    """One ``execute``: the same command (id, first-attempt time) sent again and again, the
    pause doubling from the client's ``retry_interval`` to 8 s, until ``wait`` seconds pass."""

    client: LedgerClient
    aggregate_id: str
    command: Any
    command_id: str
    expected_version: int | None
    first_attempt_ms: int
    future: Future[Reply]
    wait: float
    deadline: float
    pause: float

    def send(self) -> float:
        """Send once more; the seconds to wait for the reply before the next attempt."""
        self.client._send(
            self.aggregate_id,
            self.command,
            command_id=self.command_id,
            expected_version=self.expected_version,
            first_attempt_ms=self.first_attempt_ms,
            future=None,
        )
        pause, self.pause = self.pause, min(self.pause * 2, _MAX_RETRY_INTERVAL)
        return max(0.0, min(pause, self.deadline - time.monotonic()))

    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    def timed_out(self) -> ReplyTimeoutError:
        return self.client._timed_out(self.command_id, self.first_attempt_ms, self.wait)

    def forget(self) -> None:
        self.client._forget((self.command_id, self.aggregate_id), self.future)


def _unwrap(get: Callable[..., Any], ref: Any, timeout: float) -> Any:
    """``ray.get``, raising the actor's own error (``ValueError``, ``HistoryBehindError``)
    rather than Ray's wrapper of it."""
    from ray.exceptions import RayTaskError

    try:
        return get(ref, timeout=timeout)
    except RayTaskError as e:
        original = getattr(e, "cause", None)
        if isinstance(original, Exception):
            raise original from None
        raise


def now_ms() -> int:
    """Wall-clock epoch milliseconds: a command's first-attempt time."""
    return int(time.time() * 1000)
