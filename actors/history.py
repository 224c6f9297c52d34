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
from collections.abc import Iterable
from contextlib import suppress
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
from topology.codec.keys import encode_history_key, encode_seam_key, encode_waypoint_key
from topology.codec.wire import ENCODER, CodecError
from topology.history import (
    ORIGIN,
    WAYPOINT_EVERY,
    Elsewhere,
    HistoryPage,
    PointInTime,
    QueryDeadline,
    Seam,
    Waypoint,
    check_page,
    departure_after,
    history_page,
    holder,
    last_at_or_before,
    state_at,
    stint_start,
    waypoints,
)
from topology.moves import RecordKind, decode_arrival, decode_departure, record_kind
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
    "page_of",
    "point_of",
    "seam_entries",
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
        the waypoint at or before ``after_version``. Where a repartition moved the account,
        the page holds this partition's stint only and ``continue_on`` names the partition
        that holds the events after ``next_after`` (an empty page: all of them)."""
        check_page(after_version, limit)
        self._catch_up(wait)
        deadline = QueryDeadline(time.monotonic() + budget, time.monotonic)
        return page_of(
            self.codec, self._store, aggregate_id, after_version, limit, deadline=deadline
        )

    def state_at(
        self,
        aggregate_id: str,
        *,
        at_ms: int | None = None,
        version: int | None = None,
        upto: int | None = None,
        wait: float = 15.0,
        budget: float = FOLD_BUDGET,
    ) -> PointInTime[Any] | Elsewhere | None:
        """The aggregate's committed state at a time or a version (None: it did not exist).
        A time is found by binary search over the aggregate's event times (its events up to
        ``upto`` only, when given); the state is folded from the waypoint before that event.
        Where a repartition put the event asked for on another partition: ``Elsewhere``."""
        if (at_ms is None) == (version is None):
            raise ValueError("give exactly one of at_ms and version")
        self._catch_up(wait)
        deadline = QueryDeadline(time.monotonic() + budget, time.monotonic)
        return point_of(
            self.codec, self._store, aggregate_id, deadline, at_ms=at_ms, version=version, upto=upto
        )

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
            value = msg.value()
            try:
                kind = record_kind(msg.headers())
                if kind is not None and value is not None:
                    # A seam: what came before it is installed first, so the waypoints of
                    # the events after an arrival fold from the arrival's.
                    self._install(entries, fresh, position)
                    entries, fresh = seam_entries(self.codec, kind, value, msg.offset()), {}
                    position = msg.offset() + 1
                    self._install(entries, fresh, position)
                    entries = {}
                    continue
                position = msg.offset() + 1
                if value is None:
                    continue
                envelope = decode_event_envelope(value)
            except (CodecError, ValueError) as e:
                log.error("events[%d] offset %d not indexed: %s", self.partition, msg.offset(), e)
                position = msg.offset() + 1
                continue
            entries[encode_history_key(envelope.aggregate_id, envelope.sequence)] = value
            fresh.setdefault(envelope.aggregate_id, []).append((envelope.sequence, value))
        self._install(entries, fresh, position)

    def _install(
        self, entries: dict[bytes, bytes], fresh: dict[str, list[tuple[int, bytes]]], position: int
    ) -> None:
        """Install ``entries`` with the waypoints the ``fresh`` events complete, as of events
        ``position``."""
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


def page_of(
    codec: Codec,
    store: HistoryStore,
    aggregate_id: str,
    after_version: int,
    limit: int,
    *,
    deadline: QueryDeadline,
) -> HistoryPage[Any]:
    """A page of the aggregate's events after ``after_version`` from ``store``: this
    partition's stint only, where a repartition moved the account, with ``continue_on``
    naming the partition that holds the events after ``next_after`` (an empty page: all of
    them)."""
    seams = store.seams(aggregate_id)
    elsewhere = holder(seams, after_version + 1)
    if elsewhere is not None:
        return HistoryPage(
            aggregate_id=aggregate_id, entries=[], next_after=after_version, continue_on=elsewhere
        )
    start = fold_start(codec, store, aggregate_id, after_version)
    ends = departure_after(seams, after_version + 1)
    before = None if ends is None else ends.sequence + 1
    records = store.events(aggregate_id, after=start.sequence, **_before(before))
    page = history_page(
        codec, aggregate_id, records, after_version, limit, start=start, deadline=deadline
    )
    if ends is None or page.next_after not in (None, ends.sequence):
        return page
    return HistoryPage(
        aggregate_id=aggregate_id,
        entries=page.entries,
        next_after=ends.sequence,
        continue_on=ends.partition,
    )


def point_of(
    codec: Codec,
    store: HistoryStore,
    aggregate_id: str,
    deadline: QueryDeadline,
    *,
    at_ms: int | None = None,
    version: int | None = None,
    upto: int | None = None,
) -> PointInTime[Any] | Elsewhere | None:
    """The aggregate's state at a time (its events up to ``upto`` only, when given) or a
    version, from ``store`` (None: it did not exist then); ``Elsewhere`` where a
    repartition put that event on another partition."""
    seams = store.seams(aggregate_id)
    if at_ms is not None:
        last = store.last(aggregate_id) if upto is None else upto
        arrival = stint_start(seams, last)
        after = 0 if arrival is None else arrival.sequence

        def timestamp_of(sequence: int) -> int:
            data = store.event(aggregate_id, sequence)
            if data is None:
                raise CodecError(f"history of {aggregate_id!r}: event {sequence} is not indexed")
            return decode_event_envelope(data).timestamp_ms

        version = last_at_or_before(at_ms, last, timestamp_of, after)
        if arrival is not None and version == after:
            return Elsewhere(arrival.partition, after)
    if version is None or version < 1:
        return None
    elsewhere = holder(seams, version)
    if elsewhere is not None:
        return Elsewhere(elsewhere, version)
    start = fold_start(codec, store, aggregate_id, version - 1)
    records = store.events(aggregate_id, after=start.sequence)
    return state_at(codec, aggregate_id, records, version, start=start, deadline=deadline)


def seam_entries(codec: Codec, kind: RecordKind, value: bytes, offset: int) -> dict[bytes, bytes]:
    """The index entries of a marker at events ``offset``: its seam, and for an arrival the
    waypoint of the state it carries (where folds of the account's later events here start).
    Raises CodecError for a record of the flow that is no marker."""
    if kind is RecordKind.DEPARTED:
        departure = decode_departure(value)
        seam = Seam(departure.sequence, False, departure.moved_to)
        return {_seam_key(departure.aggregate_id, seam, offset): ENCODER.encode(seam)}
    if kind is not RecordKind.ARRIVED:
        raise CodecError(f"a {kind} record does not belong on an events topic")
    arrival = decode_arrival(value)
    seam = Seam(arrival.sequence, True, arrival.moved_from)
    state = codec.snapshots.decode(arrival.snapshot).slot.state
    return {
        _seam_key(arrival.aggregate_id, seam, offset): ENCODER.encode(seam),
        encode_waypoint_key(arrival.aggregate_id, arrival.sequence): codec.waypoints.encode(state),
    }


def _before(sequence: int | None) -> dict[str, int]:
    return {} if sequence is None else {"before": sequence}


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


def start_history(
    settings: Settings, aggregate: AnyAggregate, partitions: Iterable[int] | None = None
) -> list[Any]:
    """``deploy_history`` without the wait, for ``partitions`` (None: all): the actors'
    handles, each ready once its ``ready`` answers (the application's topics must exist)."""
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
        for p in (range(settings.partitions) if partitions is None else partitions)
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


def _seam_key(aggregate_id: str, seam: Seam, offset: int) -> bytes:
    return encode_seam_key(aggregate_id, seam.sequence, offset)
