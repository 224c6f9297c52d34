"""The routing a process knows (the application's partition count, its slots and routing
table), learnt from the control topic and kept current as the coordinator publishes.

``Routes`` holds it and answers ``router`` (a ``topology.routing.Router``); it is fed the
control records read at start (``Routes.of``) and then every ``service`` and ``routing``
record as it comes, from the reply channel's consumer (``actors.channel``) or from a
``ControlTail`` of its own (``Reads`` used alone). A partition member holds one too,
given newer tables by the coordinator between batches (``Member.set_routing``).

Invariants: the table only moves forward, slot by slot (``RoutingTable.merge`` by
``moved_at``, so records read twice or out of order change nothing); the partition count only
grows (a service record with fewer partitions than known is ignored: a count never shrinks
while its partitions hold data); with no slots assigned (``ServiceRecord.slots == 0``) there
is no table, and the router is ``partition_for(key, partitions)`` exactly.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from actors.control_store import read_control
from actors.kafka import consumer_config
from actors.records import poll_fetched
from topology.control import (
    ControlDecodeError,
    ControlRecord,
    DesiredState,
    RoutingRecord,
    ServiceRecord,
    decode_control,
)
from topology.names import Names
from topology.routing import Router, RoutingTable
from topology.settings import Settings
from topology.topics import TopicLayout

__all__ = ["ControlTail", "Routes", "learn"]

log = logging.getLogger(__name__)


class Routes:
    """Thread-safe. ``router`` is replaced whole on every change, so a reader that took it
    routes a whole batch (or one command) by one table."""

    def __init__(self, partitions: int, table: RoutingTable | None = None) -> None:
        self._lock = threading.Lock()
        self._slots = 0 if table is None else table.slots
        self.router = Router(partitions, table)

    @classmethod
    def of(cls, desired: DesiredState, partitions: int) -> Routes:
        """The routing ``desired`` records: its service's count (``partitions`` when none is
        recorded yet) and, once slots are assigned, its table."""
        routes = cls(partitions)
        if desired.service is not None:
            routes.apply(desired.service)
        if desired.routing is not None:
            routes.apply(desired.routing)
        return routes

    @property
    def partitions(self) -> int:
        return self.router.partitions

    @property
    def table(self) -> RoutingTable | None:
        return self.router.table

    def apply(self, record: ControlRecord) -> int | None:
        """Learn from one control record (others are ignored). Returns the partition count
        known before, when a service record raised it; else None."""
        match record:
            case ServiceRecord():
                return self._service(record)
            case RoutingRecord(table=table):
                self.merge(table)
        return None

    def merge(self, table: RoutingTable) -> bool:
        """Merge ``table`` into the known one (by ``moved_at``); whether the table changed.
        The first table fixes S (only the coordinator publishes one, once the slots are
        assigned); a table of another S is ignored (False)."""
        with self._lock:
            self._slots = self._slots or table.slots
            if table.slots != self._slots:
                log.warning("a routing table of %d slots, not %d", table.slots, self._slots)
                return False
            router = self.router
            merged = table if router.table is None else router.table.merge(table)
            if merged == router.table:
                return False
            self.router = Router(router.partitions, merged)
        log.info("routing table version %d", merged.version)
        return True

    def _service(self, record: ServiceRecord) -> int | None:
        with self._lock:
            router = self.router
            self._slots = self._slots or record.slots
            if record.partitions <= router.partitions:
                return None
            self.router = Router(record.partitions, router.table)
        log.info("the application has %d partitions (was %d)", record.partitions, router.partitions)
        return router.partitions


class ControlTail:
    """A thread that feeds ``Routes`` with the control topic's records (read at start, then
    tailed from where that read ended), as the API tier reads (its ``client`` groups, never
    joined). One consumer, assigned ``control[0]`` only, polled
    with a long wait: a few idle fetches a second. Close it when done."""

    WAIT_SECONDS = 0.5

    def __init__(self, settings: Settings) -> None:
        desired, following = read_control(settings, role="client")
        self.routes = Routes.of(desired, settings.partitions)
        self._closed = threading.Event()
        self._consumer = Consumer(
            consumer_config(settings, group_id=Names.of(settings).group("client", unique=True))
        )
        control = TopicLayout.of(settings).control
        self._consumer.assign([TopicPartition(control, 0, following)])
        self._thread = threading.Thread(target=self._run, name="control-tail", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(5)
        self._consumer.close()

    def _run(self) -> None:
        while not self._closed.is_set():
            for msg in poll_fetched(self._consumer, self.WAIT_SECONDS):
                learn(self.routes, msg)


def learn(routes: Routes, msg: Any) -> int | None:
    """Apply the control record in ``msg`` to ``routes`` (``Routes.apply``'s answer); an
    error or an undecodable record is logged and skipped."""
    error, value = msg.error(), msg.value()
    if error is not None:
        log.warning("control consumer: %s", error.str())
        return None
    if value is None:
        return None
    try:
        record = decode_control(value)
    except ControlDecodeError as e:
        log.warning("control offset %d: %s", msg.offset(), e)
        return None
    return routes.apply(record)
