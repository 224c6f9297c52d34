"""A sender for the peers of the e2e and latency phases: ``LedgerClient``'s path (the same
confluent-kafka producer and consumer configs from ``actors.kafka``, the same
command records, one reply lane read from its end, replies matched to waiters by command id) against
any
application's topics: Kafka Streams' (real replies) or the raw echo's (the command's own bytes
come back, so the echo decodes nothing but the envelope's ``reply_to``)."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import uuid
from concurrent.futures import Future
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from actors.kafka import consumer_config, producer_config
from actors.records import poll_fetched
from actors.watermarks import watermarks
from topology.codec.commands import encode_command
from topology.codec.replies import decode_answer
from topology.envelopes import CommandEnvelope, Reply
from topology.partitioner import partition_for
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["ReplyClient"]

log = logging.getLogger(__name__)

_ENVELOPE = msgspec.msgpack.Decoder(CommandEnvelope)


class ReplyClient:
    """Thread-safe; ``send`` returns a future of the reply. ``echo``: the replies are the
    commands' own bytes (the raw echo), answered as accepted."""

    def __init__(
        self,
        bootstrap: str,
        app_id: str,
        partitions: int,
        *,
        reply_lanes: int = 1,
        lane: int = 0,
        echo: bool = False,
    ) -> None:
        settings = Settings.resolve(
            app_id=app_id, bootstrap_servers=bootstrap, partitions=partitions,
            reply_lanes=reply_lanes,
        )  # fmt: skip
        self.layout = TopicLayout.of(settings)
        self.lane = lane
        self.partitions = partitions
        self._echo = echo
        self._commands = self.layout.name(TopicKind.COMMANDS)
        self._pending: dict[str, Future[Reply]] = {}
        self._lock = threading.Lock()
        self._prefix = os.urandom(6).hex()
        self._ids = itertools.count()
        self._closed = threading.Event()
        self._producer = Producer(producer_config(settings))
        self._consumer = Consumer(
            consumer_config(settings, group_id=f"{app_id}-bench-{uuid.uuid4().hex[:8]}")
        )
        replies = self.layout.name(TopicKind.REPLIES)
        start = []
        for p in self.layout.reply_partitions(lane):
            _, high = watermarks(self._consumer, TopicPartition(replies, p))
            start.append(TopicPartition(replies, p, high))
        self._consumer.assign(start)
        self._io = threading.Thread(target=self._serve, name="reply-client-io", daemon=True)
        self._io.start()

    def send(self, aggregate_id: str, command: Any) -> Future[Reply]:
        command_id = f"{self._prefix}-{next(self._ids)}"
        value = encode_command(aggregate_id, command, command_id=command_id, reply_to=self.lane)
        future: Future[Reply] = Future()
        with self._lock:
            self._pending[command_id] = future
        key = aggregate_id.encode()
        while True:
            try:
                self._producer.produce(
                    self._commands, value, key, partition_for(key, self.partitions)
                )
                break
            except BufferError:
                self._producer.poll(0.01)
        self._producer.poll(0)
        return future

    def _serve(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0)
            for msg in poll_fetched(self._consumer, 0.05):
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("reply consumer: %s", error)
                    continue
                value = msg.value() or b""
                if self._echo:
                    envelope = _ENVELOPE.decode(value)
                    reply = Reply.accept(
                        command_id=envelope.command_id,
                        aggregate_id=envelope.aggregate_id,
                        version=0,
                    )
                else:
                    answer = decode_answer(value)
                    if answer is None:  # an id in flight: not an answer
                        continue
                    reply = answer
                with self._lock:
                    future = self._pending.pop(reply.command_id, None)
                if future is not None:
                    future.set_result(reply)

    def __enter__(self) -> ReplyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._producer.flush(10)
        self._closed.set()
        self._io.join(5)
        self._consumer.close()
        with self._lock:
            pending, self._pending = self._pending, {}
        for f in pending.values():
            if not f.done():
                f.set_exception(RuntimeError("client closed before the reply came"))
