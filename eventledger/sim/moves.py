"""Online repartition in the simulator: the coordinator's real `RepartitionDriver`, one tick
an op, over the simulated control topic and the in-memory logs
(`docs/design-repartition.md`, "The simulator and the fault suite").

The driver's seams are the simulator's: its control writer appends the records to the
control log and produces each `MoveSlots` to `internal[source]` in the same (atomic) write;
a flaky write commits and then reports a failure (the driver asks again with the same
version: the source must skip the copy); growing the topics makes the new partitions'
workers (a shrink grows nothing: its sources stay, drained, and a later growth to at most
the count takes them back by moves alone); a member's slot record is its worker's; the
push hands the table to every worker (a zombie keeps its old one). A driver crash loses
the driver's memory: a new one starts from the control records read back. The handoff and
install themselves are the workers' batches (`SimPartition`, the real `process_batch`).

Invariant: the control records and the requests of one write are committed together, so a
recorded REQUESTED move always has its request in `internal[source]`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from actors.control_store import MoveRequest
from actors.repartition_driver import RepartitionDriver, RepartitionRefusedError
from eventledger.sim.logs import Logs
from eventledger.sim.ops import DriverCrash, DriverTick, MoveOp, Repartition
from topology.control import (
    ControlRecord,
    DesiredState,
    MoveState,
    RepartitionPhase,
    RepartitionRecord,
    RoutingRecord,
    ServiceRecord,
)
from topology.moves import RecordKind, SlotRecord, encode_move, kind_header
from topology.routing import RoutingTable
from topology.settings import Settings
from topology.topics import TopicKind

__all__ = ["Grower", "SimRepartition"]


class Grower(Protocol):
    """What the driver's world needs of the simulated world."""

    @property
    def count(self) -> int: ...

    def grow(self, partitions: int) -> None: ...

    def push(self, table: RoutingTable) -> None: ...

    def slot_record(self, partition: int) -> SlotRecord | None: ...


class _ControlLog:
    """The control topic: every record committed, in order, and the move requests produced
    with them (one atomic write each). `flaky`: the next write commits, then raises."""

    def __init__(self, logs: Logs) -> None:
        self.logs = logs
        self.records: list[ControlRecord] = []
        self.flaky = False
        self.requests = 0  # MoveSlots produced, copies included

    def write(self, *records: ControlRecord, requests: Sequence[MoveRequest] = ()) -> None:
        for source, move in requests:
            header = (kind_header(RecordKind.MOVE),)
            value = encode_move(move)
            self.logs.produce_committed(
                TopicKind.INTERNAL, source, move.move_id.encode(), value, header
            )
            self.requests += 1
        self.records.extend(records)
        if self.flaky:
            self.flaky = False
            raise RuntimeError("the control write committed, but its answer was lost")

    def desired(self) -> DesiredState:
        """The control records read back (a restarted coordinator's view)."""
        return DesiredState.of(self.records)


class _DriverWorld:
    """`actors.repartition_driver.World` over the simulated world."""

    def __init__(self, owner: SimRepartition) -> None:
        self.owner = owner

    def start_slots(self) -> None:
        self.owner.start_slots()

    def grow_topics(self, partitions: int) -> None:
        """The in-memory logs make a partition on first use: nothing to grow."""

    def adopt(self, partitions: int) -> None:
        self.owner.adopt(partitions)

    def running(self, partition: int) -> bool:
        return partition < self.owner.world.count

    def slot_record(self, partition: int) -> SlotRecord | None:
        return self.owner.world.slot_record(partition)

    def leg_pause_ms(self, partition: int, move_id: str) -> float | None:
        return None

    def aggregates(self, partition: int) -> int | None:
        """Not reported: the simulated partitions hold a few accounts, so moves keep
        `SLOTS_PER_MOVE` slots either way."""
        return None

    def push_routing(self, table: RoutingTable) -> None:
        self.owner.world.push(table)


class SimRepartition:
    """The coordinator's repartition in the simulated world `world` (initially `partitions`
    partitions, `slots_per_partition` slots each once assigned); `clock` is the wall time
    in seconds."""

    def __init__(
        self,
        world: Grower,
        logs: Logs,
        *,
        partitions: int,
        slots_per_partition: int,
        clock: Callable[[], float],
    ) -> None:
        self.world = world
        self.settings = Settings(
            "sim", "sim:9092", partitions=partitions, slots_per_partition=slots_per_partition
        )
        self.clock = clock
        self.control = _ControlLog(logs)
        self.control.records.append(ServiceRecord(partitions, serving=True))
        self.lock = threading.RLock()
        self.desired = self.control.desired()
        self.driver = self._driver()
        self.seams = _DriverWorld(self)
        self.errors = 0  # driver ticks that raised (the coordinator tries again)
        self.crashes = 0
        self.refused = 0  # repartitions refused (a rebuild under way)

    def _driver(self) -> RepartitionDriver:
        return RepartitionDriver(
            self.settings, self.desired, self.control, self.lock, clock=self.clock
        )

    @property
    def active(self) -> bool:
        return self.driver.active

    @property
    def published(self) -> RoutingTable | None:
        """The published routing table, as clients read it from the control topic."""
        return self.desired.table()

    def published_moves(self) -> int:
        """The moves published so far, over every repartition."""
        moves = {}
        for r in self.control.records:
            if isinstance(r, RepartitionRecord):
                moves[r.number] = sum(m.state is MoveState.PUBLISHED for m in r.moves)
        return sum(moves.values())

    def shrinks(self) -> int:
        """The repartitions done to fewer partitions than they started from."""
        done = {
            r.number
            for r in self.control.records
            if isinstance(r, RepartitionRecord)
            and r.phase is RepartitionPhase.DONE
            and r.to_partitions < r.from_partitions
        }
        return len(done)

    def apply(self, op: MoveOp, rebuilding: set[int]) -> None:
        """Carry out a driver's op (`Learn` is the world's)."""
        match op:
            case Repartition(partitions=to, parallel=parallel):
                try:
                    self.driver.request(to, parallel, rebuilding=rebuilding)
                except RepartitionRefusedError:
                    self.refused += 1
            case DriverTick(flaky=flaky):
                self.control.flaky = flaky
                try:
                    self.driver.step(self.seams)
                except RuntimeError:
                    self.errors += 1  # the coordinator's step fails; the next tick tries again
                self.control.flaky = False
            case DriverCrash():
                self.crashes += 1
                self.desired = self.control.desired()
                self.driver = self._driver()

    # -- the coordinator's side of the seams --------------------------------------------------

    def start_slots(self) -> None:
        """`Coordinator.start_slots`: S and the table at version 0, one write; then pushed."""
        service = self.desired.service
        if service is not None and service.slots and self.desired.routing is not None:
            return
        table = RoutingTable.initial(self.settings.partitions, self.settings.slots)
        assigned = ServiceRecord(self.world.count, serving=True, slots=table.slots)
        self._write(assigned, RoutingRecord(table, self.clock()))
        self.world.push(table)

    def adopt(self, partitions: int) -> None:
        """`Coordinator.adopt_partitions`: the new partitions' workers, then the count."""
        self.world.grow(partitions)
        service = self.desired.service
        if service is not None and service.partitions < partitions:
            self._write(ServiceRecord(partitions, serving=True, slots=service.slots))

    def _write(self, *records: ControlRecord) -> None:
        with self.lock:
            flaky, self.control.flaky = self.control.flaky, False
            self.control.write(*records)
            self.control.flaky = flaky
            for record in records:
                self.desired.apply(record)
