"""The raw echo (the e2e phase's limit): one process consumes the commands topic and produces
each command's own bytes back as its reply, to the replies partition its ``reply_to`` lane
reads (``TopicLayout.reply_partition``), keyed by the command's key. No transactions, no
state; the same confluent-kafka configs as eventledger's clients (``actors.kafka``).
Run as ``python -m bench.systems.echo_worker CONFIG_JSON``; speaks ``bench.wire``."""

from __future__ import annotations

import json
import signal
import sys
import threading
import uuid
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from actors.kafka import consumer_config, producer_config
from actors.records import poll_fetched
from bench.wire import emit, rss_bytes
from topology.envelopes import CommandEnvelope
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["main"]


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    settings = Settings.resolve(
        app_id=config["app_id"],
        bootstrap_servers=config["bootstrap"],
        partitions=config["partitions"],
        reply_lanes=config["reply_lanes"],
    )
    layout = TopicLayout.of(settings)
    decoder = msgspec.msgpack.Decoder(CommandEnvelope)
    consumer = Consumer(
        consumer_config(settings, group_id=f"{settings.app_id}-echo-{uuid.uuid4().hex[:6]}")
    )
    commands = layout.name(TopicKind.COMMANDS)
    replies = layout.name(TopicKind.REPLIES)
    consumer.assign([TopicPartition(commands, p, 0) for p in range(settings.partitions)])
    producer = Producer({**producer_config(settings), **config.get("producer", {})})
    producer.list_topics(timeout=30)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emit("ready")
    echoed = 0
    while not stop.is_set():
        for msg in poll_fetched(consumer, 0.05):
            error = msg.error()
            if error is not None:
                raise KafkaException(error)
            value = msg.value() or b""
            lane = decoder.decode(value).reply_to or 0
            target = layout.reply_partition(msg.partition() or 0, lane)
            while True:
                try:
                    producer.produce(replies, value, msg.key(), target)
                    break
                except BufferError:
                    producer.poll(0.01)
            echoed += 1
        producer.poll(0)
    producer.flush(30)
    consumer.close()
    emit("report", processed=echoed, rss_bytes=rss_bytes())


if __name__ == "__main__":
    main()
