"""The repartition driver's world inside the coordinator, as of one tick: where the driver
meets the topics, the coordinator's count and the partitions (``RepartitionDriver``'s
``World``).

Each method is the one place its seam is crossed: the topics' growth
(``actors.growth.grow_topics``), the coordinator's slots and count (``Coordinator.start_slots``,
``Coordinator.adopt_partitions``) and a writer's table (``Member.set_routing``); and, coded
against the name it will have, the slot record a member reports in its stats
(``PartitionStats.slot_record``, an encoded ``SlotRecord``).
"""

from __future__ import annotations

import logging
from typing import Any

from actors.growth import grow_topics
from actors.messages import PartitionStats
from actors.supervisor import ANSWER_SECONDS, Observation, answers
from topology.moves import SlotRecord, decode_slot_record
from topology.placement import ActorPhase
from topology.routing import RoutingTable

__all__ = ["CoordinatorWorld"]

log = logging.getLogger(__name__)


class CoordinatorWorld:
    """The coordinator ``coordinator`` as its tick ``tick`` observed the application."""

    def __init__(self, coordinator: Any, tick: Observation) -> None:
        self.coordinator = coordinator
        self.tick = tick

    def start_slots(self) -> None:
        """The coordinator records ``ServiceRecord.slots`` and the routing table at version 0
        (idempotent)."""
        self.coordinator.start_slots()

    def grow_topics(self, partitions: int) -> None:
        """Every per-partition topic (and snapshot generation) grows to ``partitions``
        partitions; one already that large is left alone."""
        grow_topics(self.coordinator.settings, partitions)

    def adopt(self, partitions: int) -> None:
        """The coordinator records ``partitions`` as the count (once every topic has it) and
        places writers for the new partitions."""
        self.coordinator.adopt_partitions(partitions)

    def running(self, partition: int) -> bool:
        actual = self.tick.actual
        return partition < len(actual) and actual[partition].observed.phase is ActorPhase.RUNNING

    def _stats(self, partition: int) -> PartitionStats | None:
        """What the writer reported this tick (None: nothing)."""
        actual = self.tick.actual
        return actual[partition].stats if partition < len(actual) else None

    def slot_record(self, partition: int) -> SlotRecord | None:
        """The slot record the writer reported in its stats this tick (None: none)."""
        stats = self._stats(partition)
        data = None if stats is None else stats.slot_record
        return decode_slot_record(data) if data else None

    def leg_pause_ms(self, partition: int, move_id: str) -> float | None:
        """How long the partition's batch that made the move's leg took (its stats this
        tick; None: not reported)."""
        stats = self._stats(partition)
        return None if stats is None else stats.move_pauses_ms.get(move_id)

    def aggregates(self, partition: int) -> int | None:
        """How many aggregates the writer reported in its stats this tick."""
        stats = self._stats(partition)
        return None if stats is None else stats.aggregates

    def push_routing(self, table: RoutingTable) -> None:
        """``set_routing(table)`` on every running writer, awaited together;
        raises naming those that did not take it (the driver pushes again next tick)."""
        refs = {
            a.partition: a.info.handle.set_routing.remote(table)
            for a in self.tick.actual
            if a.info is not None and a.observed.phase is ActorPhase.RUNNING
        }
        _, failed = answers(refs, ANSWER_SECONDS)
        if failed:
            raise RuntimeError(
                "routing table not taken by "
                + "; ".join(f"partition {p}: {why}" for p, why in failed.items())
            )
