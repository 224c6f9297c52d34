"""``LedgerClient``: send a command, await its reply (sync or asyncio), query an account.

One reply consumer per client, on one reply lane (``reply_to`` in every command: the replies
partitions ``TopicLayout.reply_partitions(lane)``, one per data partition), started once and
positioned at the end before the first send; replies are routed
to waiters by command id. Retrying with the same command id is safe: the partition actor
answers a repeated id with the same reply and writes no new events.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from opentelemetry import trace

from actors import tracing
from actors.kafka import FatalError, consumer_config, producer_config
from actors.watermarks import watermarks
from topology.codec import Reply, decode_reply, encode_command
from topology.partitioner import partition_for
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["LedgerClient", "ReplyTimeoutError"]

log = logging.getLogger(__name__)


class ReplyTimeoutError(TimeoutError):
    """No reply in time. The command may still be processed: retry with the same id."""


class LedgerClient:
    """A thread-safe client of one application. Close it (or use ``with``) when done."""

    def __init__(
        self,
        settings: Settings,
        *,
        reply_lane: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.layout = TopicLayout.of(settings)
        self._commands = self.layout.name(TopicKind.COMMANDS)
        self.reply_lane = (
            reply_lane if reply_lane is not None else random.randrange(settings.reply_lanes)
        )
        self._pending: dict[str, list[Future[Reply]]] = {}
        self._id_prefix = os.urandom(8).hex()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._producer = Producer(producer_config(self.settings))
        self._consumer = Consumer(
            consumer_config(settings, group_id=f"{settings.app_id}-client-{uuid.uuid4().hex}")
        )
        replies = self.layout.name(TopicKind.REPLIES)
        start = []
        for p in self.layout.reply_partitions(self.reply_lane):
            _, high = watermarks(self._consumer, TopicPartition(replies, p))
            start.append(TopicPartition(replies, p, high))
        self._consumer.assign(start)
        self._io = threading.Thread(target=self._serve, name="ledger-client-io", daemon=True)
        self._io.start()

    def __enter__(self) -> LedgerClient:
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
    ) -> Future[Reply]:
        """Produce a command and return a future of its reply."""
        if self._closed.is_set():
            raise RuntimeError("the client is closed")
        command_id = command_id or self.new_command_id()
        key = aggregate_id.encode()
        partition = partition_for(key, self.settings.partitions)
        value = encode_command(
            aggregate_id,
            command,
            command_id=command_id,
            expected_version=expected_version,
            reply_to=self.reply_lane,
        )
        future: Future[Reply] = Future()
        with self._lock:
            self._pending.setdefault(command_id, []).append(future)
        if not tracing.enabled():  # no SDK: pass on the caller's trace, if it has one
            self._produce(command_id, key, value, partition, tracing.current_headers())
            return future
        with tracing.tracer().start_as_current_span(
            "send",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "eventledger.command_id": command_id,
                "eventledger.aggregate_id": aggregate_id,
                "eventledger.command_type": type(command).__name__,
                "eventledger.partition": partition,
            },
        ):
            self._produce(command_id, key, value, partition, tracing.headers_from_context())
        return future

    def new_command_id(self) -> str:
        """A command id unique across clients: a random per-client prefix and a counter."""
        return f"{self._id_prefix}-{next(self._ids)}"

    def _produce(
        self,
        command_id: str,
        key: bytes,
        value: bytes,
        partition: int,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        produce: Callable[..., None] = self._producer.produce  # headers: (str, bytes)
        produce(
            self._commands,
            value,
            key,
            partition,
            on_delivery=lambda err, _msg: self._delivered(command_id, err),
            headers=headers,
        )

    def execute(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send and wait for the reply; ``ReplyTimeoutError`` after ``timeout`` seconds."""
        command_id = command_id or self.new_command_id()
        future = self.send(
            aggregate_id, command, command_id=command_id, expected_version=expected_version
        )
        wait = timeout or self.timeout
        try:
            return future.result(wait)
        except TimeoutError:
            raise self._timed_out(command_id, future, wait) from None

    async def execute_async(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """The asyncio form of ``execute``."""
        command_id = command_id or self.new_command_id()
        future = self.send(
            aggregate_id, command, command_id=command_id, expected_version=expected_version
        )
        wait = timeout or self.timeout
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), wait)
        except TimeoutError:
            raise self._timed_out(command_id, future, wait) from None

    def _timed_out(self, command_id: str, future: Future[Reply], wait: float) -> ReplyTimeoutError:
        self._forget(command_id, future)
        return ReplyTimeoutError(
            f"no reply for command {command_id} in {wait:.1f}s "
            "(it may still be processed: retry with the same command id)"
        )

    # -- queries ---------------------------------------------------------------------------

    def partition_of(self, aggregate_id: str) -> int:
        return partition_for(aggregate_id.encode(), self.settings.partitions)

    def get_account(self, aggregate_id: str, timeout: float = 30.0) -> dict[str, Any] | None:
        """The committed public view of an account, asked of the actor that owns it."""
        import ray

        from actors.launcher import partition_actor

        actor = partition_actor(self.settings.app_id, self.partition_of(aggregate_id))
        view: dict[str, Any] | None = ray.get(actor.get.remote(aggregate_id), timeout=timeout)
        return view

    # -- io thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0)
            msg = self._consumer.poll(0.05)
            if msg is None:
                continue
            error, value = msg.error(), msg.value()
            if error is not None:
                log.warning("reply consumer: %s", error.str())
                continue
            if value is None:
                continue
            try:
                reply = decode_reply(value)
            except Exception:
                log.warning("undecodable reply at offset %d", msg.offset())
                continue
            with self._lock:
                futures = self._pending.pop(reply.command_id, [])
            for f in futures:
                if not f.done():
                    f.set_result(reply)

    def _delivered(self, command_id: str, err: KafkaError | None) -> None:
        if err is None:
            return
        with self._lock:
            futures = self._pending.pop(command_id, [])
        for f in futures:
            if not f.done():
                f.set_exception(FatalError(f"command {command_id} not delivered: {err.str()}"))

    def _forget(self, command_id: str, future: Future[Reply]) -> None:
        with self._lock:
            waiting = self._pending.get(command_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._pending.pop(command_id, None)
