"""The history index of one partition: every event of its aggregates by (aggregate id,
sequence), in a local RocksDB, tailed from the events partition (``read_committed``).

Why an index on disk rather than back-pointers in the events: a query then reads exactly the
aggregate's own events with one range scan (no Kafka fetch per event: a fetch at an offset
returns the partition's records around it, mostly other aggregates'), the flow and the event
layout stay as they are, and the index is derived: a new disk rebuilds it from the events
topic, which is kept forever. Events are small, so the copy costs about their size on disk.

Invariants:
- it holds committed events only (``read_committed``), each under
  ``codec.encode_history_key(aggregate, sequence)``, with the next events offset it reflects,
  written in the same write batch: after any crash it is a prefix of the log;
- a query answers only once the index reaches the events partition's end as it was when the
  query came (read your writes: a reply is committed with its events), else it raises
  ``HistoryBehindError``, never a partial history;
- it runs beside the partition actor, not in it: queries answer while that actor restores,
  and a rebuild switch changes snapshots only, never the events it indexes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

import ray
from confluent_kafka import Consumer, KafkaError, TopicPartition
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from actors.kafka import consumer_config
from actors.watermarks import watermarks
from topology.codec.aggregate import Codec
from topology.codec.events import decode_event_envelope
from topology.codec.keys import encode_history_key
from topology.codec.keys import history_prefix as _prefix
from topology.codec.wire import CodecError
from topology.history import HistoryPage, PointInTime, history_page, state_at
from topology.names import NAMESPACE, Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = [
    "HistoryBehindError",
    "HistoryIndex",
    "HistoryStore",
    "deploy_history",
    "history_actor",
    "stop_history",
]

log = logging.getLogger(__name__)

_POSITION = b"\xff\xffposition"  # a 2-byte length prefix of 0xffff: never an aggregate's key
_TAIL = {
    "enable.partition.eof": True,
    "fetch.wait.max.ms": 50,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.max.messages.kbytes": 16 * 1024,
}
_BATCH = 10_000


class HistoryBehindError(TimeoutError):
    """The index has not reached the events partition's end in time (it is catching up, or
    the broker is slow): retry; nothing partial is answered."""


class HistoryStore:
    """History key → event record value, and the next events offset reflected. One writer
    (the tail thread); readers from any thread (RocksDB reads are thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _open(path)
        self._write = WriteOptions()
        # No write-ahead log: a crash loses a suffix, which the tail reads again.
        self._write.disable_wal = True  # type: ignore[method-assign, assignment]

    def position(self) -> int:
        raw = self._db.get(_POSITION)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def install(self, entries: dict[bytes, bytes], position: int) -> None:
        """Index ``entries`` and advance the position, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in entries.items():
            batch.put(key, value)
        batch.put(_POSITION, position.to_bytes(8, "big"))
        self._db.write(batch, self._write)

    def events(self, aggregate_id: str) -> Iterator[bytes]:
        """The aggregate's event record values in sequence order (a lazy iterator)."""
        prefix = _prefix(aggregate_id)
        for key, value in self._db.items(from_key=prefix):
            if not cast(bytes, key).startswith(prefix):
                return
            yield cast(bytes, value)

    def wipe(self) -> None:
        self._db.close()
        Rdict.destroy(str(self.path))
        self._db = _open(self.path)

    def close(self) -> None:
        with suppress(Exception):
            self._db.flush()
        self._db.close()


def _open(path: Path) -> Rdict:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(Cache(16 * 1024 * 1024))
    options.set_block_based_table_factory(table)
    return Rdict(str(path), options)


class HistoryIndex:
    """Serves partition ``partition``'s history queries from its index, kept up to date by
    a thread tailing the events partition. A plain class; ``deploy_history`` wraps it in a
    detached Ray actor (restarted by Ray: the constructor reopens the index and goes on)."""

    def __init__(self, settings: Settings, partition: int, aggregate: AnyAggregate) -> None:
        self.settings, self.partition = settings, partition
        self.codec = Codec(aggregate)
        names = Names.of(settings)
        self._events = TopicPartition(TopicLayout.of(settings).name(TopicKind.EVENTS), partition)
        self._store = HistoryStore(names.history_dir(settings, partition))
        self._offsets = Consumer(consumer_config(settings, group_id=names.group("history")))
        self._reached = threading.Condition()
        self._position = self._store.position()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, name=f"history-{partition}", daemon=True)
        self._thread.start()

    # -- queries ---------------------------------------------------------------------------

    def history(
        self, aggregate_id: str, after_version: int = 0, limit: int = 100, wait: float = 15.0
    ) -> HistoryPage[Any]:
        """A page of the aggregate's committed events (see ``topology.history``)."""
        self._catch_up(wait)
        records = self._store.events(aggregate_id)
        return history_page(self.codec, aggregate_id, records, after_version, limit)

    def state_at(
        self,
        aggregate_id: str,
        *,
        at_ms: int | None = None,
        version: int | None = None,
        wait: float = 15.0,
    ) -> PointInTime[Any] | None:
        """The aggregate's committed state at a time or a version (None: it did not exist)."""
        self._catch_up(wait)
        records = self._store.events(aggregate_id)
        return state_at(self.codec, aggregate_id, records, at_ms=at_ms, version=version)

    def position(self) -> int:
        """The next events offset the index reflects."""
        return self._position

    def ready(self) -> int:
        return self._position

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._offsets.close()
        self._store.close()

    def _catch_up(self, wait: float) -> None:
        _, high = watermarks(self._offsets, self._events)
        with self._reached:
            if not self._reached.wait_for(lambda: self._position >= high, timeout=wait):
                raise HistoryBehindError(
                    f"the history of partition {self.partition} reaches events offset "
                    f"{self._position}, the partition ends at {high}: retry"
                )

    # -- the tail --------------------------------------------------------------------------

    def _tail(self) -> None:
        """Follow the events partition until stopped; a failure (the broker gone, say) is
        logged and the tail starts again from the stored position a second later."""
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:
                log.exception(
                    "history of partition %d: the tail failed; again in 1 s", self.partition
                )
                self._stop.wait(1.0)

    def _follow(self) -> None:
        consumer = Consumer(
            consumer_config(
                self.settings, group_id=Names.of(self.settings).group("history"), **_TAIL
            )
        )
        try:
            low, high = watermarks(consumer, self._events)
            if self._position > high:
                log.warning("%s is ahead of the events log; rebuilding it", self._store.path)
                self._store.wipe()
                self._position = 0
            start = max(self._position, low)
            self._advance({}, start)
            consumer.assign([TopicPartition(self._events.topic, self.partition, start)])
            while not self._stop.is_set():
                self._index(consumer.consume(_BATCH, timeout=0.1))
        finally:
            consumer.close()

    def _index(self, messages: list[Any]) -> None:
        entries: dict[bytes, bytes] = {}
        position = self._position
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    position = max(position, msg.offset())  # past the transaction markers
                else:
                    log.warning("history of partition %d: %s", self.partition, error.str())
                continue
            position = msg.offset() + 1
            value = msg.value()
            if value is None:
                continue
            try:
                envelope = decode_event_envelope(value)
            except CodecError as e:
                log.error("events[%d] offset %d not indexed: %s", self.partition, msg.offset(), e)
                continue
            entries[encode_history_key(envelope.aggregate_id, envelope.sequence)] = value
        if position != self._position or entries:
            self._advance(entries, position)

    def _advance(self, entries: dict[bytes, bytes], position: int) -> None:
        self._store.install(entries, position)
        with self._reached:
            self._position = position
            self._reached.notify_all()


# -- deployment (the driver side) ------------------------------------------------------------


def history_actor(app_id: str, partition: int) -> Any:
    """The live history actor of ``partition`` (raises ValueError when there is none)."""
    return ray.get_actor(Names(app_id).history_actor(partition), namespace=NAMESPACE)


def deploy_history(settings: Settings, aggregate: AnyAggregate) -> None:
    """Start (or find) one detached history actor per partition (``stop_history`` removes
    them). Ray restarts them without limit, on another node when theirs dies (the index is
    then rebuilt there from the events)."""
    remote: Any = ray.remote(HistoryIndex)
    handles = [
        remote.options(
            name=Names.of(settings).history_actor(p),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=-1,
            max_concurrency=8,
            num_cpus=0,
        ).remote(settings, p, aggregate)
        for p in range(settings.partitions)
    ]
    ray.get([h.ready.remote() for h in handles], timeout=120)


def stop_history(app_id: str) -> None:
    """Stop and remove every history actor of the application (their indexes stay on disk)."""
    prefix = Names(app_id).history_actor(0).removesuffix("0")
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor["name"]
        if actor["namespace"] != NAMESPACE or not name.startswith(prefix):
            continue
        if not name.removeprefix(prefix).isdigit():
            continue
        with suppress(ValueError):
            handle = ray.get_actor(name, namespace=NAMESPACE)
            with suppress(Exception):
                ray.get(handle.stop.remote(), timeout=30)
            ray.kill(handle, no_restart=True)
