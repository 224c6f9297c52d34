"""Consumed Kafka messages as the batch step's input records."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from topology.codec.wire import CodecError
from topology.moves import RecordKind, part_position, record_kind
from topology.step.records import InRecord

__all__ = ["UNREADABLE_HEADERS", "OutsideTheLogError", "in_record", "poll_batch", "poll_fetched"]

log = logging.getLogger(__name__)

UNREADABLE_HEADERS = ("eventledger.error.unreadable_headers", b"1")
"""Stands for a record's headers when the client library could not read them."""


def in_record(msg: Any, internal_topic: str = "") -> InRecord:
    """The input record of a consumed message (internal: read from `internal_topic`).
    Headers the client library cannot read (a key that is not UTF-8) are replaced by
    `UNREADABLE_HEADERS`: the command is still handled, only its trace context is lost, so
    one hostile header never fails a batch."""
    try:
        headers = msg.headers() or ()
    except (UnicodeError, ValueError, SystemError) as e:
        log.warning("offset %d: unreadable headers (%s)", msg.offset(), e)
        headers = (UNREADABLE_HEADERS,)
    internal = bool(internal_topic) and msg.topic() == internal_topic
    return InRecord(msg.offset(), msg.key(), msg.value(), headers, internal)


_PART_WAIT_S = 0.1
_PART_PATIENCE_S = 60.0


def _inside_a_move(batch: list[Any]) -> bool:
    """Whether `batch` holds a handoff part of a move but not the move's last part."""
    open_moves: set[str] = set()
    for msg in batch:
        if msg.error() is not None:
            continue
        try:
            kind = record_kind(msg.headers())
        except (ValueError, UnicodeError, SystemError):
            continue  # the batch step dead-letters it
        if kind is not RecordKind.HANDOFF:
            continue
        try:
            move, index, count = part_position(msg.value() or b"")
        except CodecError:
            continue  # the batch step dead-letters it
        if index == count - 1:
            open_moves.discard(move)
        else:
            open_moves.add(move)
    return bool(open_moves)


class OutsideTheLogError(Exception):
    """The consumer's position lies outside its partition's log (``auto.offset.reset`` is
    ``error``: nothing is skipped or replayed by itself)."""


def poll_fetched(consumer: Any, timeout: float, limit: int = 1_000) -> list[Any]:
    """Wait up to ``timeout`` for one message, then take what is already fetched, at most
    ``limit`` in all, in one call (``poll`` returns on the first message, where
    ``consume(n, t)`` would wait ``t`` for ``n`` of them). Errors are returned as messages."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(limit - 1, timeout=0)]


def poll_batch(consumer: Any, limit: int, max_seconds: float) -> list[Any]:
    """Block briefly for one record, then take what is already fetched, up to ``limit``
    records and ``max_seconds``; a dry poll ends the batch (low latency at low load). A
    batch never ends inside a move's handoff parts: past a part, it reads on to the move's
    last part, whatever the limits (all parts are in one committed transaction, so they
    are readable). Consumer errors are logged and skipped, except a fatal one (raised as
    ``KafkaException``) and a position outside the log (``OutsideTheLogError``)."""
    first = consumer.poll(0.02)
    if first is None:
        return []
    batch = [first]
    deadline = time.monotonic() + max_seconds
    while len(batch) < limit and time.monotonic() < deadline:
        more = consumer.consume(limit - len(batch), timeout=0)
        if not more:
            break
        batch.extend(more)
    waited = 0
    while _inside_a_move(batch):
        more = consumer.consume(100, timeout=_PART_WAIT_S)
        waited = 0 if more else waited + 1
        if waited * _PART_WAIT_S > _PART_PATIENCE_S:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, "a move's last handoff part was not readable")
            )
        batch.extend(more)
    good = []
    for msg in batch:
        error = msg.error()
        if error is None:
            good.append(msg)
        elif error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            raise OutsideTheLogError(error.str())
        elif error.fatal():
            raise KafkaException(error)
        else:
            log.warning("consumer: %s", error.str())
    return good
