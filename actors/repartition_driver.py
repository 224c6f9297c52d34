"""The coordinator's repartition step: grow or shrink an application from N to M partitions
by moves of slots (`docs/design-repartition.md`, "The driver").

Driven one tick at a time from the control record ``repartition``:

1. GROWING: assign the application's slots if it has none; when M exceeds the recorded
   count, grow the topics to M and adopt M (a shrink, or a growth into drained partitions,
   grows and adopts nothing: topics never shrink, and the recorded count stays); wait until
   every writer below M runs; then plan (``plan_moves``, deterministic: a shrink's plan
   empties every partition at or above M) and record the plan, MOVING.
2. MOVING: keep up to ``parallel`` sources busy, the moves of one source one after another.
   A move goes PLANNED → REQUESTED (the record and its ``MoveSlots`` to internal[source] in
   one control transaction) → HANDED_OFF (the source's slot record gave the slots at its
   version) → INSTALLED (the target's slot record holds them) → PUBLISHED (the routing
   table naming the target and the move PUBLISHED, one transaction; then the table is
   pushed to the writers). When every move is published: DONE.

Invariants: every record is written before it is acted on, so a restarted coordinator reads
where it was and goes forward (a REQUESTED move is only watched: its request is already in
internal[source]); there is no rollback. A move's version is fresh: above the routing
table's, above every version handed out before (this repartition's and the previous one's,
``base_version``); a request whose write failed is asked again with the same version (if
the first did commit, the source skips the copy, and the move still completes at that
version). The table names a target only after the target's slot record holds the move.
N, a repartition's ``from_partitions``, is the serving count (``serving_partitions``), not
the recorded one: after a shrink to M' the partitions M'..M-1 are drained, and a later
growth reuses them.

What the driver touches of the world goes through ``World`` (``actors.repartition_world``
holds the coordinator's, one seam per method), so its state machine runs in unit tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from actors.control_store import MoveRequest
from topology.control import (
    ControlRecord,
    DesiredState,
    MoveRecord,
    MoveState,
    RepartitionPhase,
    RepartitionRecord,
    RoutingRecord,
    serving_partitions,
)
from topology.moves import MoveSlots, SlotRecord
from topology.routing import RoutingTable, plan_moves, slots_per_move_for
from topology.settings import Settings

__all__ = ["RepartitionDriver", "RepartitionRefusedError", "RequestWriter", "World"]

log = logging.getLogger(__name__)


class RepartitionRefusedError(ValueError):
    """A repartition that may not start now (the message says why)."""


class RequestWriter(Protocol):
    """The control writer: records and move requests, committed all or none."""

    def write(self, *records: ControlRecord, requests: Sequence[MoveRequest] = ()) -> None: ...


class World(Protocol):
    """What the driver needs of the application, as of one tick. Growth steps are
    idempotent (growing to a count already reached, adopting it again, do nothing)."""

    def start_slots(self) -> None:
        """Record the application's slots and the routing table at version 0."""

    def grow_topics(self, partitions: int) -> None:
        """Give every per-partition topic ``partitions`` partitions."""

    def adopt(self, partitions: int) -> None:
        """Make ``partitions`` the application's count: place writers for the new ones."""

    def running(self, partition: int) -> bool:
        """Whether partition ``partition``'s writer runs."""

    def slot_record(self, partition: int) -> SlotRecord | None:
        """Partition ``partition``'s committed slot record (None: not reported)."""

    def leg_pause_ms(self, partition: int, move_id: str) -> float | None:
        """How long ``partition``'s leg of move ``move_id`` paused it (None: not reported)."""

    def aggregates(self, partition: int) -> int | None:
        """How many aggregates ``partition``'s writer holds (None: not reported)."""

    def push_routing(self, table: RoutingTable) -> None:
        """Hand the published ``table`` to every writer."""


class RepartitionDriver:
    """Drives the application's repartition; ``step`` runs in the coordinator's loop thread,
    ``request`` and ``progress`` on its method thread (under ``lock``)."""

    def __init__(
        self,
        settings: Settings,
        desired: DesiredState,
        writer: RequestWriter,
        lock: threading.RLock,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.desired = desired
        self.writer = writer
        self.lock = lock
        self.clock = clock
        self._grown = 0  # the repartition number whose topics this process grew and adopted
        self._asked: dict[str, int] = {}  # move id → version of a request not known committed
        self._pushed = -1  # the table version last pushed to the writers

    # -- requests (method thread) ------------------------------------------------------------

    def request(self, partitions: int, parallel: int, *, rebuilding: set[int]) -> RepartitionRecord:
        """Start a repartition to ``partitions``, or return the one under way to the same
        count. Raises RepartitionRefusedError while a rebuild (``rebuilding``: its partitions)
        or a repartition to another count runs, and for a count outside 1..S."""
        with self.lock:
            current = self.desired.repartition
            if current is not None and current.phase.active:
                if current.to_partitions == partitions:
                    return current
                raise RepartitionRefusedError(
                    f"a repartition to {current.to_partitions} partitions is under way "
                    f"({current.phase}, {current.done()}/{len(current.moves)} moves): "
                    f"follow it with --partitions {current.to_partitions}"
                )
            if rebuilding:
                raise RepartitionRefusedError(
                    f"a rebuild is under way on partitions {sorted(rebuilding)}: "
                    "repartition once it is done"
                )
            recorded = self._partitions()
            slots = self._slots(recorded)
            if not 1 <= partitions <= slots:
                raise RepartitionRefusedError(
                    f"--partitions must be in 1..{slots} (the application's slots), "
                    f"got {partitions}"
                )
            count = serving_partitions(recorded, current)
            if parallel < 1:
                raise RepartitionRefusedError(f"--parallel must be >= 1, got {parallel}")
            routing = self.desired.routing
            base = max(
                routing.table.version if routing is not None else 0,
                current.top_version if current is not None else 0,
            )
            record = RepartitionRecord(
                number=current.number + 1 if current is not None else 1,
                from_partitions=count,
                to_partitions=partitions,
                slots=slots,
                phase=RepartitionPhase.GROWING,
                requested_at=self.clock(),
                parallel=parallel,
                base_version=base,
            )
            self._write(record)
            log.info(
                "repartition %d: %d → %d partitions requested", record.number, count, partitions
            )
            return record

    def progress(self) -> RepartitionRecord | None:
        """The latest repartition as recorded (None: never one)."""
        with self.lock:
            return self.desired.repartition

    @property
    def active(self) -> bool:
        with self.lock:
            record = self.desired.repartition
            return record is not None and record.phase.active

    def _partitions(self) -> int:
        """The recorded count: every topic has it, and it never shrinks."""
        service = self.desired.service
        return service.partitions if service is not None else self.settings.partitions

    def _slots(self, partitions: int) -> int:
        """S: the application's, or what assigning them will record."""
        service = self.desired.service
        if service is not None and service.slots:
            return service.slots
        return partitions * self.settings.slots_per_partition

    # -- the loop's step ---------------------------------------------------------------------

    def step(self, world: World) -> None:
        """Advance the repartition under way, if any, by what ``world`` shows."""
        with self.lock:
            record = self.desired.repartition
        if record is None:
            return
        if record.phase is RepartitionPhase.GROWING:
            self._grow(record, world)
            return
        if record.phase is RepartitionPhase.MOVING:
            record = self._advance(record, world)
        self._push(world)
        if record.phase is RepartitionPhase.MOVING:
            self._request(record)

    def _grow(self, record: RepartitionRecord, world: World) -> None:
        target = record.to_partitions
        with self.lock:
            service = self.desired.service
        if service is None or not service.slots:
            world.start_slots()
        if self._grown != record.number:
            with self.lock:
                recorded = self._partitions()
            if target > recorded:  # else the drained partitions take the slots
                world.grow_topics(target)
                world.adopt(target)
            self._grown = record.number
        if not all(world.running(p) for p in range(target)):
            return
        with self.lock:
            routing = self.desired.routing
        if routing is None:
            self._fail(record, "the application has no routing table: its slots are not assigned")
            return
        if routing.table.slots != record.slots:
            self._fail(
                record, f"the routing table has {routing.table.slots} slots, not {record.slots}"
            )
            return
        table = routing.table
        held = sum(world.aggregates(p) or 0 for p in set(table.owners))
        per_move = slots_per_move_for(held, table.slots)
        moves = tuple(
            MoveRecord(
                move_id=f"{record.number}.{i}", source=m.source, target=m.target, slots=m.slots
            )
            for i, m in enumerate(plan_moves(table, target, slots_per_move=per_move))
        )
        if moves:
            self._write(msgspec.structs.replace(record, phase=RepartitionPhase.MOVING, moves=moves))
        else:
            self._finish(record, ())
        log.info(
            "repartition %d: %d partitions run; %d moves of %d slots planned (%d aggregates, "
            "at most %d slots a move)",
            record.number,
            target,
            len(moves),
            sum(len(m.slots) for m in moves),
            held,
            per_move,
        )

    def _advance(self, record: RepartitionRecord, world: World) -> RepartitionRecord:
        """Record the legs the partitions' slot records show, then publish what is
        installed; returns the record as it now stands."""
        now = self.clock()
        moves = []
        for move in record.moves:
            seen = _legs(move, world, now)
            if isinstance(seen, str):
                return self._fail(record, seen)
            moves.append(seen)
        if tuple(moves) != record.moves:
            record = msgspec.structs.replace(record, moves=tuple(moves))
            self._write(record)
        if any(m.state is MoveState.INSTALLED for m in moves):
            record = self._publish(record)
        return record

    def _publish(self, record: RepartitionRecord) -> RepartitionRecord:
        """Write the table naming each installed move's target and those moves PUBLISHED,
        in one transaction."""
        now = self.clock()
        with self.lock:
            routing = self.desired.routing
        if routing is None:  # pragma: no cover - a move is planned from the table
            raise RuntimeError("no routing table to publish into")
        table = routing.table
        moves = []
        for move in record.moves:
            if move.state is not MoveState.INSTALLED:
                moves.append(move)
                continue
            if any(table.moved_at[s] < move.version for s in move.slots):
                table = table.assign(move.slots, move.target, move.version)
            moves.append(msgspec.structs.replace(move, state=MoveState.PUBLISHED, published_at=now))
        published = msgspec.structs.replace(record, moves=tuple(moves))
        routing_record = RoutingRecord(table, now)
        if all(m.state is MoveState.PUBLISHED for m in moves):
            return self._finish(published, (routing_record,))
        self._write(routing_record, published)
        log.info("repartition %d: table version %d published", record.number, table.version)
        return published

    def _push(self, world: World) -> None:
        """Hand the published table to the writers once per version (and once after this
        coordinator started: a writer that missed a push gets it again)."""
        with self.lock:
            routing = self.desired.routing
        if routing is not None and routing.table.version > self._pushed:
            world.push_routing(routing.table)
            self._pushed = routing.table.version

    def _request(self, record: RepartitionRecord) -> None:
        """Request the next move of every source not busy, up to ``parallel`` sources."""
        taken = {m.source for m in record.moves if m.state.busy}
        chosen: list[MoveRecord] = []
        for move in record.moves:
            if len(taken) >= record.parallel:
                break
            if move.state is MoveState.PLANNED and move.source not in taken:
                chosen.append(move)
                taken.add(move.source)
        if not chosen:
            return
        with self.lock:
            routing = self.desired.routing
        top = max(
            record.top_version,
            routing.table.version if routing is not None else 0,
            *self._asked.values(),
        )
        now = self.clock()
        requested: dict[str, MoveRecord] = {}
        for move in chosen:
            version = self._asked.get(move.move_id)
            if version is None:
                top += 1
                version = self._asked[move.move_id] = top
            requested[move.move_id] = msgspec.structs.replace(
                move, state=MoveState.REQUESTED, version=version, requested_at=now
            )
        updated = msgspec.structs.replace(
            record, moves=tuple(requested.get(m.move_id, m) for m in record.moves)
        )
        self._write(
            updated,
            requests=[
                (m.source, MoveSlots(m.move_id, m.version, m.slots, m.target))
                for m in requested.values()
            ],
        )
        for move_id in requested:
            self._asked.pop(move_id, None)
        for m in requested.values():
            log.info(
                "repartition %d: move %s requested: %d slots %d → %d at version %d",
                record.number,
                m.move_id,
                len(m.slots),
                m.source,
                m.target,
                m.version,
            )

    def _finish(
        self, record: RepartitionRecord, records: tuple[ControlRecord, ...]
    ) -> RepartitionRecord:
        done = msgspec.structs.replace(
            record, phase=RepartitionPhase.DONE, finished_at=self.clock()
        )
        self._write(*records, done)
        log.info("repartition %d: done, %d moves", record.number, len(record.moves))
        return done

    def _fail(self, record: RepartitionRecord, reason: str) -> RepartitionRecord:
        log.error("repartition %d failed: %s", record.number, reason)
        failed = msgspec.structs.replace(
            record, phase=RepartitionPhase.FAILED, finished_at=self.clock(), error=reason
        )
        self._write(failed)
        return failed

    def _write(self, *records: ControlRecord, requests: Sequence[MoveRequest] = ()) -> None:
        with self.lock:
            self.writer.write(*records, requests=requests)
            for r in records:
                self.desired.apply(r)


def _legs(move: MoveRecord, world: World, now: float) -> MoveRecord | str:
    """``move`` after the legs its partitions' slot records show (a REQUESTED move may be
    seen handed off and installed at once), or why it cannot go on: its source neither owns
    its slots nor gave them at its version, so the source skipped the request."""
    if move.state is MoveState.REQUESTED:
        source = world.slot_record(move.source)
        if source is not None and source.gave(move.slots, move.version):
            move = msgspec.structs.replace(
                move,
                state=MoveState.HANDED_OFF,
                handed_off_at=now,
                handoff_pause_ms=world.leg_pause_ms(move.source, move.move_id),
            )
        elif source is not None and not all(source.owns(s) for s in move.slots):
            return (
                f"move {move.move_id}: partition {move.source} neither owns slots "
                f"{list(move.slots)} nor gave them at version {move.version}"
            )
    if move.state is MoveState.HANDED_OFF:
        target = world.slot_record(move.target)
        if target is not None and target.holds(move.slots, move.version):
            move = msgspec.structs.replace(
                move,
                state=MoveState.INSTALLED,
                installed_at=now,
                install_pause_ms=world.leg_pause_ms(move.target, move.move_id),
            )
    return move
