"""One raw-pipe worker: consume its partitions → produce, no transactions, no state.

Per command it writes what eventledger writes per command (a reply and an event) and per
consumed batch one snapshot and one state record per distinct key (eventledger snapshots the
last state of each aggregate a batch changed). Values are the command's own bytes: nothing is
decoded or computed. Run as ``python -m bench.systems.rawpipe_worker CONFIG_JSON``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from actors.kafka import bootstrap_config
from bench.kafkaio import consumer_config
from bench.wire import emit, rss_bytes, wait_for_go

__all__ = ["PRODUCER", "main"]

# eventledger's producer tuning (actors.kafka.producer_config) without the transaction.
PRODUCER: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 2,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
}
BATCH = 1_000  # eventledger's default batch_max_commands


def main() -> None:
    config = json.loads(sys.argv[1])
    partitions: list[int] = config["partitions"]
    end = config["records"]
    replies, events, snapshots, states = config["outputs"]
    consumer = Consumer(
        consumer_config(
            config["bootstrap"], **{"enable.partition.eof": False, "fetch.wait.max.ms": 50}
        )
    )
    consumer.assign([TopicPartition(config["source"], p, 0) for p in partitions])
    producer = Producer({**bootstrap_config(config["bootstrap"]), "log_level": 3, **PRODUCER})
    producer.list_topics(timeout=30)  # connected before the clock starts
    emit("ready")
    wait_for_go()

    def produce(topic: str, value: bytes, key: bytes, p: int) -> None:
        while True:
            try:
                producer.produce(topic, value, key, p)
                return
            except BufferError:
                producer.poll(0.05)

    consumed = written = 0
    first_at = 0.0
    next_report = time.monotonic() + 0.5
    while consumed < end:
        batch = consumer.consume(BATCH, timeout=0.1)
        if not batch:
            continue
        if not first_at:
            first_at = time.time()
        latest: dict[bytes, tuple[int, bytes]] = {}
        for msg in batch:
            error = msg.error()
            if error is not None:
                raise KafkaException(error)
            value, key, p = msg.value() or b"", msg.key() or b"", msg.partition() or 0
            produce(replies, value, key, p)
            produce(events, value, key, p)
            latest[key] = (p, value)
        for key, (p, value) in latest.items():
            produce(snapshots, value, key, p)
            produce(states, value, key, p)
        written += len(latest)
        consumed += len(batch)
        producer.poll(0)
        if time.monotonic() >= next_report:
            emit("progress", processed=consumed)
            next_report = time.monotonic() + 0.5
    left = producer.flush(120)
    last_at = time.time()
    consumer.close()
    if left:
        raise RuntimeError(f"{left} records were not delivered")
    emit(
        "report",
        processed=consumed,
        first_at=first_at,
        last_at=last_at,
        per_batch_keys=written,
        rss_bytes=rss_bytes(),
    )


if __name__ == "__main__":
    main()
