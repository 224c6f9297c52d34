"""The request/reply channel: produce a command to the commands topic and route its reply,
read from the replies topic, back to the caller waiting for it.

One producer and one reply consumer per channel, on one reply lane (``reply_to`` in every
command: the replies partitions ``p * reply_lanes + lane``, one per data partition),
positioned at the end before the first send and read by one io thread, which also serves the
producer's delivery reports.

The channel routes by the application's routing (``actors.routes``): read from the control
topic at start, then kept current by the same consumer, which also tails ``control[0]``.
When a service record raises the partition count, the producer learns the new commands
partitions and the lane's new replies partitions are assigned from their beginning, so no
reply written there before the channel learnt of them is missed. Both run with the API
tier's Kafka properties (``Settings.for_api``): they only write commands and read replies
and the control topic. A reply finds its
waiters by (command id, aggregate id), so two channels' replies never cross, and every
waiter of one key gets the same reply. ``LedgerClient`` and the benchmark's senders are
built on it.

Every command goes through the channel's order barrier (``actors.barrier``): when an
account's owner changes, a command for it is held until the channel's commands for it still
in flight to another partition are answered, given up (``forget``) or ``order_timeout`` old,
then produced to the owner, so a command forwarded by the old owner is not overtaken by a
later one sent straight to the new owner. Deciding and producing happen under one lock, so
what the barrier releases reaches the producer before any later command of the account.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Self

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from actors import messaging
from actors.barrier import OrderBarrier
from actors.control_store import read_control
from actors.kafka import consumer_config, producer_config
from actors.records import poll_fetched
from actors.routes import Routes, learn
from actors.send_trace import send_span
from actors.watermarks import watermarks
from topology.codec.commands import encode_command
from topology.codec.replies import decode_answer
from topology.envelopes import Reply
from topology.names import Names
from topology.routing import Router
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["Answer", "OutcomeUnknownError", "ReplyChannel", "Request", "now_ms"]

log = logging.getLogger(__name__)


class OutcomeUnknownError(TimeoutError):
    """No reply in time, or the command may not have reached the broker: whether it was
    executed is unknown. Retry with the same ``command_id`` and ``first_attempt_ms``: the
    service executes a command id at most once within its idempotency window."""

    def __init__(self, message: str, *, command_id: str, first_attempt_ms: int) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.first_attempt_ms = first_attempt_ms


@dataclass(frozen=True, slots=True)
class Request:
    """A command as sent, the same on every attempt: a retry re-sends it unchanged, and the
    service executes its command id at most once within its idempotency window, counted
    from ``first_attempt_ms`` (epoch ms). ``principal`` names who sends it (recorded with
    the events it causes; None: not said)."""

    aggregate_id: str
    command: Any
    command_id: str
    first_attempt_ms: int
    expected_version: int | None = None
    principal: str | None = None


Answer = Callable[[bytes], Reply | None]
"""What a reply record's value answers (None: nothing; an exception: an unreadable record)."""


class ReplyChannel:
    """Thread-safe. Close it (or use ``with``) when done: what was sent is flushed and the
    callers still waiting get an error. ``answer`` reads the reply records (the benchmark's
    raw echo answers with the commands' own bytes). ``routes`` is the application's routing
    as the channel knows it (``router``: which partition a command goes to).
    ``order_timeout``: the longest a command is held behind the ones it must follow
    (``actors.barrier``), in seconds; ``held`` counts the commands it held."""

    def __init__(
        self,
        settings: Settings,
        *,
        lane: int,
        answer: Answer = decode_answer,
        order_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.lane = lane
        self._answer = answer
        layout = TopicLayout.of(settings)
        self._layout = layout
        self._commands = layout.name(TopicKind.COMMANDS)
        self._control = layout.control
        self._server = messaging.server(settings.bootstrap_servers)
        self._pending: dict[tuple[str, str], list[Future[Reply]]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        kafka = settings.for_api()
        desired, following = read_control(kafka, role="client")
        self.routes = Routes.of(desired, settings.partitions)
        self._barrier: OrderBarrier[_Send] = OrderBarrier(self._owner, order_timeout)
        self._sending = threading.RLock()  # the barrier's decisions and their produces
        self._producer = Producer(producer_config(kafka))
        self._consumer = Consumer(
            consumer_config(kafka, group_id=Names.of(settings).group("client", unique=True))
        )
        self._replies = layout.name(TopicKind.REPLIES)
        start = [TopicPartition(self._control, 0, following)]
        for p in range(self.routes.partitions):
            lane_partition = TopicPartition(self._replies, layout.reply_partition(p, lane))
            _, high = watermarks(self._consumer, lane_partition)
            lane_partition.offset = high
            start.append(lane_partition)
        self._consumer.assign(start)
        self._io = threading.Thread(target=self._serve, name="reply-channel-io", daemon=True)
        self._io.start()

    @property
    def router(self) -> Router:
        """Where commands go now (the routing's current router)."""
        return self.routes.router

    @property
    def held(self) -> int:
        """Commands the order barrier held so far (each counted once)."""
        return self._barrier.held_total

    @property
    def held_seconds(self) -> float:
        """The time the commands released by the order barrier spent held, summed."""
        return self._barrier.held_seconds

    def _owner(self, aggregate_id: str) -> int:
        return self.router.partition_of(aggregate_id.encode())

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

    def new_command_id(self) -> str:
        """A new command id: 128 random bits, so no id can be told from another one (a
        counter would let whoever sees one id claim the next ones first)."""
        return secrets.token_hex(16)

    def send(self, aggregate_id: str, command: Any) -> Future[Reply]:
        """``submit`` a new command: a new command id, first attempted now."""
        return self.submit(Request(aggregate_id, command, self.new_command_id(), now_ms()))

    def submit(self, request: Request) -> Future[Reply]:
        """Produce ``request`` once and return a future of its reply. The future fails with
        ``OutcomeUnknownError`` when the broker did not acknowledge the command (it may still
        have stored it)."""
        future = self.expect(request)
        try:
            self._produce(request, future)
        except BaseException:
            self.forget(request, future)
            raise
        return future

    def expect(self, request: Request) -> Future[Reply]:
        """A future of ``request``'s reply: the next reply to its (command id, aggregate id)
        completes it. ``forget`` it when no longer waiting."""
        if self._closed.is_set():
            raise RuntimeError("the client is closed")
        future: Future[Reply] = Future()
        with self._lock:
            self._pending.setdefault((request.command_id, request.aggregate_id), []).append(future)
        return future

    def produce(self, request: Request) -> None:
        """One attempt at sending ``request``. A delivery failure is only logged: the caller
        sends again (``Retries``)."""
        self._produce(request, None)

    def forget(self, request: Request, future: Future[Reply]) -> None:
        """Stop routing ``request``'s reply to ``future``."""
        key = (request.command_id, request.aggregate_id)
        with self._lock:
            waiting = self._pending.get(key, [])
            if future in waiting:
                waiting.remove(future)
            if waiting:
                return
            self._pending.pop(key, None)
        self._done(request.aggregate_id, request.command_id)

    def _produce(self, request: Request, future: Future[Reply] | None) -> None:
        """One attempt, now or when the order barrier releases it. A delivery failure fails
        ``future`` when given; a full local queue is an unknown outcome as well. Raises
        ValueError for a command the service would refuse to read (``encode_command``)."""
        value = encode_command(
            request.aggregate_id,
            request.command,
            command_id=request.command_id,
            expected_version=request.expected_version,
            reply_to=self.lane,
            first_attempt_ms=request.first_attempt_ms,
            principal=request.principal,
        )
        send = _Send(request, future, value)
        with self._sending:
            partition = self._barrier.admit(request.aggregate_id, request.command_id, send)
            if partition is not None:
                self._send(send, partition)

    def _done(self, aggregate_id: str, command_id: str) -> None:
        """The command is answered or no longer awaited: produce what it held back."""
        with self._sending:
            for send, partition in self._barrier.done(aggregate_id, command_id):
                self._send(send, partition)

    def _send(self, send: _Send, partition: int) -> None:
        request, future = send.request, send.future
        aggregate_id = request.aggregate_id
        produce: Callable[..., None] = self._producer.produce  # headers: (str, bytes)
        with send_span(
            self._commands,
            partition,
            aggregate_id=aggregate_id,
            command_id=request.command_id,
            command_type=type(request.command).__name__,
            principal=request.principal,
            server=self._server,
        ) as headers:
            try:
                produce(
                    self._commands,
                    send.value,
                    aggregate_id.encode(),
                    partition,
                    on_delivery=lambda err, _msg: self._delivered(request, future, err),
                    headers=headers,
                )
            except BufferError:
                self._producer.poll(0.1)
                self._delivered(request, future, KafkaError(KafkaError._QUEUE_FULL))

    def _delivered(
        self, request: Request, future: Future[Reply] | None, err: KafkaError | None
    ) -> None:
        if err is None:
            return
        command_id = request.command_id
        log.info(
            "command %s on %s not acknowledged: %s", command_id, request.aggregate_id, err.str()
        )
        if future is None or future.done():
            return
        self.forget(request, future)
        future.set_exception(
            OutcomeUnknownError(
                f"command {command_id} may not have reached Kafka ({err.str()}): outcome "
                f"unknown; retry with the same command id and first_attempt_ms="
                f"{request.first_attempt_ms}",
                command_id=command_id,
                first_attempt_ms=request.first_attempt_ms,
            )
        )

    # -- io thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0)
            for msg in poll_fetched(self._consumer, 0.05):
                self._route(msg)
            with self._sending:
                for send, partition in self._barrier.expire():
                    self._send(send, partition)

    def _route(self, msg: Any) -> None:
        """Complete the futures waiting for the reply in ``msg``, or learn the control
        record in it; skip anything else."""
        if msg.topic() == self._control:
            before = learn(self.routes, msg)
            if before is not None:
                self._grown(before, self.routes.partitions)
            return
        error, value = msg.error(), msg.value()
        if error is not None:
            log.warning("reply consumer: %s", error.str())
            return
        if value is None:
            return
        try:
            reply = self._answer(value)
        except Exception:
            log.warning("undecodable reply at offset %d", msg.offset())
            return
        if reply is None:
            return
        with self._lock:
            futures = self._pending.pop((reply.command_id, reply.aggregate_id), [])
        for f in futures:
            if not f.done():
                f.set_result(reply)
        if futures:
            self._done(reply.aggregate_id, reply.command_id)

    def _grown(self, first: int, end: int) -> None:
        """Data partitions ``first..end-1`` were added (io thread): the producer learns the
        commands topic's new partitions (a producer that does not know a partition refuses
        to produce to it) before any later control record, such as a table naming one, is
        read; the lane's new replies partitions are read from their beginning."""
        self._producer.list_topics(self._commands, timeout=10)
        added = [
            TopicPartition(
                self._replies, self._layout.reply_partition(p, self.lane), OFFSET_BEGINNING
            )
            for p in range(first, end)
        ]
        self._consumer.incremental_assign(added)
        log.info("reply lane %d: reading partitions %s", self.lane, [t.partition for t in added])


@dataclass(frozen=True, slots=True)
class _Send:
    """A command ready to produce: its request, the future a delivery failure fails (None
    for a retry's attempt) and its encoded value."""

    request: Request
    future: Future[Reply] | None
    value: bytes


def now_ms() -> int:
    """Wall-clock epoch milliseconds: a command's first-attempt time."""
    return int(time.time() * 1000)
