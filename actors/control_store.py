"""The desired state on Kafka: read the compacted control topic, write records to it.

Reads are ``read_committed`` from the beginning to the end (partition EOF), so a restarted
coordinator, a new Ray cluster or a restarting partition actor all see the same state.
Writes go through a ``TransactionalWriter`` (``{app}-coordinator``): a coordinator that
starts fences any earlier one still writing, and each write is committed before it returns.
A write may also carry repartition requests (``MoveSlots`` to ``internal[source]``): they
commit with its records or not at all (`docs/design-repartition.md`, a move's step 1).
A write that meets a dead producer (a timed-out commit, a transaction the broker aborted) is
tried once more on a new one; ``failures`` counts the writes in a row that failed, so the
coordinator can tell a passing fault from a writer that no longer works.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from actors.kafka import FatalError, FencedError, consumer_config
from actors.scan import scan_partition
from actors.transactional import TransactionalWriter
from topology.control import (
    ControlDecodeError,
    ControlRecord,
    DesiredState,
    PartitionRecord,
    decode_control,
    encode_control,
)
from topology.moves import RECORD_HEADER, MoveSlots, RecordKind, encode_move
from topology.names import Names
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["ControlWriter", "MoveRequest", "read_control", "read_desired", "read_partition_record"]

log = logging.getLogger(__name__)


def read_desired(settings: Settings, timeout: float = 30.0) -> DesiredState:
    """The desired state as committed to the control topic (empty if it does not exist)."""
    return read_control(settings, timeout)[0]


def read_control(
    settings: Settings, timeout: float = 30.0, *, role: str = "control"
) -> tuple[DesiredState, int]:
    """The desired state as committed to the control topic (empty if it does not exist), and
    the offset to go on reading it from (past the last record read; 0 when none was): a
    reader that tails the topic from there misses no record committed after the scan.
    ``role`` names the reader's (never joined) group: ``client`` for the API tier's."""
    topic = TopicLayout.of(settings).control
    consumer = Consumer(
        consumer_config(
            settings,
            group_id=Names.of(settings).group(role, unique=True),
            **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
        )
    )
    desired, following = DesiredState(), 0
    try:
        for msg in scan_partition(consumer, TopicPartition(topic, 0), batch=1000):
            following = msg.offset() + 1
            value = msg.value()
            if value is None:
                continue
            try:
                desired.apply(decode_control(value))
            except ControlDecodeError as e:
                log.warning("%s offset %d: %s", topic, msg.offset(), e)
    except KafkaException as e:
        if e.args[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            return desired, 0  # never deployed: nothing desired yet
        raise
    finally:
        consumer.close()
    return desired, following


def read_partition_record(settings: Settings, partition: int) -> PartitionRecord:
    """Partition ``partition``'s desired record (the default one if there is none)."""
    return read_desired(settings).partition(partition)


MoveRequest = tuple[int, MoveSlots]
"""A repartition's request: the source partition and what it is asked to hand off."""

_MOVE_HEADERS: Final = [(RECORD_HEADER, RecordKind.MOVE.encode())]


class ControlWriter:
    """The coordinator's writer of control records. One per coordinator; creating it fences
    the previous coordinator's writer."""

    def __init__(self, settings: Settings, *, end_timeout: float = 30.0) -> None:
        layout = TopicLayout.of(settings)
        self.topic = layout.control
        self.internal = layout.name(TopicKind.INTERNAL)
        self.writer = TransactionalWriter(
            settings, Names.of(settings).coordinator_txn, end_timeout=end_timeout
        )
        self.writer.open()  # fence now, not at the first write
        self.failures = 0
        """Writes in a row that failed (0 after any success)."""

    @property
    def fenced(self) -> bool:
        """Another coordinator took the id over: this one must stop writing for good."""
        return self.writer.fenced is not None

    def write(self, *records: ControlRecord, requests: Sequence[MoveRequest] = ()) -> None:
        """Commit ``records`` to the control topic and each of ``requests`` to its source's
        internal partition (key: the move id, header: the record kind), all or none. Raises
        KafkaClientError.

        After a fatal error the producer is re-created and the write tried once more on it,
        outside the ``except`` block (see ``actors.kafka`` on Kafka calls there)."""
        try:
            if not self._written(records, requests):
                self._write(records, requests)
        except Exception:
            self.failures += 1
            raise
        self.failures = 0

    def _written(self, records: tuple[ControlRecord, ...], requests: Sequence[MoveRequest]) -> bool:
        """Write ``records`` and ``requests``: True, or False after a fatal error (not a
        fence)."""
        try:
            self._write(records, requests)
        except FencedError:
            raise
        except FatalError as e:
            log.warning("control write failed (%s); trying again on a new producer", e)
            return False
        return True

    def _write(self, records: tuple[ControlRecord, ...], requests: Sequence[MoveRequest]) -> None:
        with self.writer.transaction():
            for record in records:
                key, value = encode_control(record)
                self.writer.produce(self.topic, value, key, 0)
            for source, move in requests:
                self.writer.produce(
                    self.internal,
                    encode_move(move),
                    move.move_id.encode(),
                    source,
                    headers=_MOVE_HEADERS,
                )
