"""Holding one partition's internal commands back, on the real broker: a transaction of the
test's own, left open on ``internal[p]``, is the partition's last stable offset, so p's
``read_committed`` consumer sees nothing written to ``internal[p]`` after it (a transfer's
credit leg, its completion, a move request) until the transaction is aborted. The writers
that send to ``internal[p]`` are not slowed: their records wait in the log. This is what a
slow or stalled producer in front of p looks like, and how a test keeps a transfer in flight
for as long as it needs (the coordinator resumes a partition paused by its ``Gate`` at its
next tick, so a pause cannot)."""

from __future__ import annotations

from types import TracebackType

from confluent_kafka import Producer

from actors.kafka import producer_config
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = ["InternalHold"]

HOLD_TIMEOUT_MS = 300_000
"""The hold's transaction timeout: longer than any hold a test makes (the broker aborts the
transaction after it, which would end the hold early)."""


class InternalHold:
    """Holds ``internal[partition]`` from ``__enter__`` until ``release`` (or ``__exit__``).
    Invariant: the held record is aborted, so no reader ever sees it."""

    def __init__(self, settings: Settings, partition: int) -> None:
        config = producer_config(settings, transactional_id=f"{settings.app_id}-test-hold")
        config["transaction.timeout.ms"] = HOLD_TIMEOUT_MS
        self._producer = Producer(config)
        self._topic = TopicLayout.of(settings).name(TopicKind.INTERNAL)
        self._partition = partition
        self._held = False

    def __enter__(self) -> InternalHold:
        self._producer.init_transactions(30)
        self._producer.begin_transaction()
        self._producer.produce(self._topic, b"held", b"held", partition=self._partition)
        assert self._producer.flush(30) == 0, "the held record was not written"
        self._held = True
        return self

    def release(self) -> None:
        """Abort the hold's transaction: the partition reads on from the held record."""
        if self._held:
            self._producer.abort_transaction(30)
            self._held = False

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
