"""The fault suite's state-topic reader: while transfers run, read the state topic again and
again (read_committed, every partition to its end) and check that each read adds up
(``checker.flows_problems``); once quiet, check that nothing is in flight between any two
partitions.

It reads what any downstream consumer of the public views would read, so it checks the
published state, not the actors' memory. It reads every partition the topic has at each
read, so a repartition's new partitions are read once they exist.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from confluent_kafka import Consumer

from actors.audit import read_topic
from actors.kafka import consumer_config
from eventledger.torture.checker import flows_problems
from topology.codec.aggregate import Codec
from topology.codec.state import decode_flows
from topology.flows import FLOWS_KEY, Flows
from topology.names import Names
from topology.protocol import AnyAggregate
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["StateReader", "live_partitions"]

log = logging.getLogger(__name__)


def live_partitions(settings: Settings, timeout: float = 30.0) -> int:
    """The partitions the application's events topic has now (a repartition grows it
    before its count is recorded), at least ``settings.partitions``: a metadata request of
    a consumer closed before returning (the run's process makes no admin request while
    the broker fault strikes; see ``BrokerCluster._await_members``)."""
    topic = TopicLayout.of(settings).name(TopicKind.EVENTS)
    consumer = Consumer(consumer_config(settings, group_id=Names.of(settings).group("audit")))
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    finally:
        consumer.close()
    found = 0 if meta is None or meta.error is not None else len(meta.partitions)
    return max(settings.partitions, found)


class StateReader:
    """Reads the state topic in a loop (a thread of its own) until stopped."""

    def __init__(self, settings: Settings, aggregate: AnyAggregate, pause: float = 1.0) -> None:
        self.settings = settings
        self.codec = Codec(aggregate)
        self.pause = pause
        self.reads = 0
        self.failed_reads = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def read(self) -> tuple[dict[int, dict[str, int]], dict[int, Flows]]:
        """One read of every partition to its end: the latest balance of each account and
        the latest flows, by partition."""
        views: dict[int, dict[str, int]] = {}
        flows: dict[int, Flows] = {}
        now = dataclasses.replace(self.settings, partitions=live_partitions(self.settings))
        for msg in read_topic(now, TopicKind.STATE):
            key, value, p = msg.key(), msg.value(), msg.partition()
            if value is None:  # an account handed off to another partition
                if key is not None and key != FLOWS_KEY:
                    views.get(p, {}).pop(key.decode(), None)
                continue
            if key == FLOWS_KEY:
                flows[p] = decode_flows(value)
            else:
                views.setdefault(p, {})[key.decode()] = int(self.codec.views.decode(value).balance)
        return views, flows

    def check(self, *, quiet: bool) -> list[str]:
        """One read, checked; the problems found (kept, a few as examples)."""
        views, flows = self.read()
        self.reads += 1
        found = flows_problems(views, flows, quiet=quiet)
        self.problems.extend(f"read {self.reads}: {problem}" for problem in found)
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.pause):
            try:
                self.check(quiet=False)
            except Exception as e:  # the broker down (a nemesis): read again later
                self.failed_reads += 1
                log.info("state read failed: %s", e)
