"""The history index of one partition: every event of its aggregates by (aggregate id,
sequence), and their waypoints, in a local RocksDB, tailed from the events partition
(``read_committed``).

Why an index on disk rather than back-pointers in the events: a query then reads exactly the
aggregate's own events with one range scan (no Kafka fetch per event: a fetch at an offset
returns the partition's records around it, mostly other aggregates'), the flow and the event
layout stay as they are, and the index is derived: a new disk rebuilds it from the events
topic, which is kept forever. Events are small, so the copy costs about their size on disk.

Invariants:
- it holds committed events only (``read_committed``), each under
  ``codec.encode_history_key(aggregate, sequence)``; the waypoints those events complete
  (the state after each event n·``WAYPOINT_EVERY``, under ``encode_waypoint_key``, folded
  from the waypoint and events before it); and the next events offset it reflects: all in
  the same write batch, so after any crash it is a prefix of the log with that prefix's
  waypoints;
- it records the fold its waypoints come from (``WaypointCodec.fold``: the aggregate's name,
  state and event schema versions); one of another fold, or without one, is wiped and
  rebuilt from the events when it opens, never read;
- a query answers only once the index reaches the events partition's end as it was when the
  query came (read your writes: a reply is committed with its events), else it raises
  ``HistoryBehindError``, never a partial history;
- a query seeks to the waypoint at or before what it asks and folds from there: at most
  ``WAYPOINT_EVERY`` events and its page (``MAX_PAGE``), whatever the length of the history;
  past its deadline it raises ``HistoryDeadlineError``, never a partial answer;
- it runs beside the partition actor, not in it: queries answer while that actor restores,
  and a rebuild switch changes snapshots only, never the events it indexes.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import suppress
from functools import partial
from itertools import chain
from typing import Any

import ray
from confluent_kafka import Consumer, KafkaError, TopicPartition

from actors.history_store import HistoryStore
from actors.kafka import consumer_config
from actors.logs import timestamped
from actors.watermarks import watermarks
from topology.codec.aggregate import Codec
from topology.codec.events import decode_event_envelope
from topology.codec.keys import encode_history_key, encode_waypoint_key
from topology.codec.wire import CodecError
from topology.history import (
    ORIGIN,
    WAYPOINT_EVERY,
    HistoryPage,
    PointInTime,
    QueryDeadline,
    Waypoint,
    check_page,
    history_page,
    last_at_or_before,
    state_at,
    waypoints,
)
from topology.moves import record_kind
from topology.names import NAMESPACE, Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = [
    "FOLD_BUDGET",
    "HistoryBehindError",
    "HistoryIndex",
    "deploy_history",
    "fold_start",
    "history_actor",
    "start_history",
    "stop_history",
    "waypoint_entries",
]

log = logging.getLogger(__name__)

_TAIL = {
    "enable.partition.eof": True,
    "fetch.wait.max.ms": 50,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.max.messages.kbytes": 16 * 1024,
}
_BATCH = 10_000
FOLD_BUDGET = 5.0
"""Seconds a query may fold once the index has caught up (then HistoryDeadlineError)."""


class HistoryBehindError(TimeoutError):
    """The index has not reached the events partition's end in time (it is catching up, or
    the broker is slow): retry; nothing partial is answered."""


class HistoryIndex:
    """Serves partition ``partition``'s history queries from its index, kept up to date by
    a thread tailing the events partition. A plain class; ``deploy_history`` wraps it in a
    detached Ray actor (restarted by Ray: the constructor reopens the index and goes on)."""

    def __init__(self, settings: Settings, partition: int, aggregate: AnyAggregate) -> None:
        timestamped()
        self.settings, self.partition = settings, partition
        self.codec = Codec(aggregate)
        names = Names.of(settings)
        self._events = TopicPartition(TopicLayout.of(settings).name(TopicKind.EVENTS), partition)
        self._store = HistoryStore(
            names.history_dir(settings, partition), self.codec.waypoints.fold
        )
        self._offsets = Consumer(consumer_config(settings, group_id=names.group("history")))
        self._reached = threading.Condition()
        self._position = self._store.position()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, name=f"history-{partition}", daemon=True)
        self._thread.start()

    # -- queries ---------------------------------------------------------------------------

    def history(
        self,
        aggregate_id: str,
        after_version: int = 0,
        limit: int = 100,
        wait: float = 15.0,
        budget: float = FOLD_BUDGET,
    ) -> HistoryPage[Any]:
        """A page of the aggregate's committed events (see ``topology.history``), folded from
        the waypoint at or before ``after_version``."""
        check_page(after_version, limit)
        self._catch_up(wait)
        deadline = QueryDeadline(time.monotonic() + budget, time.monotonic)
        start = fold_start(self.codec, self._store, aggregate_id, after_version)
        records = self._store.events(aggregate_id, after=start.sequence)
        return history_page(
            self.codec, aggregate_id, records, after_version, limit, start=start, deadline=deadline
        )

    def state_at(
        self,
        aggregate_id: str,
        *,
        at_ms: int | None = None,
        version: int | None = None,
        wait: float = 15.0,
        budget: float = FOLD_BUDGET,
    ) -> PointInTime[Any] | None:
        """The aggregate's committed state at a time or a version (None: it did not exist).
        A time is found by binary search over the aggregate's event times; the state is
        folded from the waypoint before that event."""
        if (at_ms is None) == (version is None):
            raise ValueError("give exactly one of at_ms and version")
        self._catch_up(wait)
        deadline = QueryDeadline(time.monotonic() + budget, time.monotonic)
        if at_ms is not None:
            timestamp_of = partial(self._timestamp, aggregate_id)
            version = last_at_or_before(at_ms, self._store.last(aggregate_id), timestamp_of)
        if version is None or version < 1:
            return None
        start = fold_start(self.codec, self._store, aggregate_id, version - 1)
        records = self._store.events(aggregate_id, after=start.sequence)
        return state_at(self.codec, aggregate_id, records, version, start=start, deadline=deadline)

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

    def _timestamp(self, aggregate_id: str, sequence: int) -> int:
        data = self._store.event(aggregate_id, sequence)
        if data is None:
            raise CodecError(f"history of {aggregate_id!r}: event {sequence} is not indexed")
        return decode_event_envelope(data).timestamp_ms

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
        fresh: dict[str, list[tuple[int, bytes]]] = {}  # aggregate → (sequence, record), in order
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
            if value is None or record_kind(msg.headers()) is not None:
                continue  # a repartition's markers are not events (its seam: not indexed yet)
            try:
                envelope = decode_event_envelope(value)
            except CodecError as e:
                log.error("events[%d] offset %d not indexed: %s", self.partition, msg.offset(), e)
                continue
            entries[encode_history_key(envelope.aggregate_id, envelope.sequence)] = value
            fresh.setdefault(envelope.aggregate_id, []).append((envelope.sequence, value))
        for aggregate_id, events in fresh.items():
            try:
                entries |= waypoint_entries(self.codec, self._store, aggregate_id, events)
            except (CodecError, ValueError) as e:  # its queries fail on the same events
                log.error(
                    "history of partition %d: no waypoints for %r: %s",
                    self.partition,
                    aggregate_id,
                    e,
                )
        if position != self._position or entries:
            self._advance(entries, position)

    def _advance(self, entries: dict[bytes, bytes], position: int) -> None:
        self._store.install(entries, position)
        with self._reached:
            self._position = position
            self._reached.notify_all()


def fold_start(codec: Codec, store: HistoryStore, aggregate_id: str, at_most: int) -> Waypoint:
    """The aggregate's last waypoint at or before event ``at_most`` (else its origin)."""
    found = store.waypoint(aggregate_id, at_most)
    if found is None:
        return ORIGIN
    sequence, value = found
    return Waypoint(sequence, codec.waypoints.decode(value))


def waypoint_entries(
    codec: Codec, store: HistoryStore, aggregate_id: str, events: list[tuple[int, bytes]]
) -> dict[bytes, bytes]:
    """The waypoint entries (key → value) that an aggregate's new ``events`` ((sequence,
    record) in order, not yet in ``store``) complete: none unless they reach a multiple of
    ``WAYPOINT_EVERY``; folded from its last waypoint before them, through the indexed events
    after it. Raises CodecError for a gap, ValueError where ``evolve`` does."""
    first, last = events[0][0], events[-1][0]
    through = last - last % WAYPOINT_EVERY
    if through < first:
        return {}
    start = fold_start(codec, store, aggregate_id, first - 1)
    indexed = store.events(aggregate_id, after=start.sequence, before=first)
    records = chain(indexed, (value for _, value in events))
    return {
        encode_waypoint_key(aggregate_id, w.sequence): codec.waypoints.encode(w.state)
        for w in waypoints(codec, records, start, through)
    }


# -- deployment (the driver side) ------------------------------------------------------------


def history_actor(app_id: str, partition: int) -> Any:
    """The live history actor of ``partition`` (raises ValueError when there is none)."""
    return ray.get_actor(Names(app_id).history_actor(partition), namespace=NAMESPACE)


def deploy_history(settings: Settings, aggregate: AnyAggregate) -> None:
    """Start (or find) one detached history actor per partition (``stop_history`` removes
    them), and wait until each is ready. Ray restarts them without limit, on another node
    when theirs dies (the index is then rebuilt there from the events)."""
    ray.get([h.ready.remote() for h in start_history(settings, aggregate)], timeout=120)


def start_history(settings: Settings, aggregate: AnyAggregate) -> list[Any]:
    """``deploy_history`` without the wait: the actors' handles, each ready once its
    ``ready`` answers (the application's topics must exist)."""
    remote: Any = ray.remote(HistoryIndex)
    return [
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
