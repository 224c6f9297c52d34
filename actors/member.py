"""A member of a partition, as the Ray actor the coordinator starts: its writer or a standby,
and a standby that takes over.

The constructor reads the partition's control record: the recorded writer member
(``PartitionRecord.writer``) opens as the writer (``PartitionWorker``, which fences), every
other member as a standby (``StandbyWorker``), so a member Ray restarts after a takeover never
fences the new writer. ``promote(epoch)`` makes this standby the writer: its tail halts at a
batch boundary, ``promote_partition`` fences and reads what is left, and a ``PartitionWorker``
built on the standby's state and id memory runs the loop (composition: one loop, one commit
path). Every member listens on a liveness socket (``actors.liveness``, ``stats().liveness``).

The member also holds the application's routing (``actors.routes``), read with its record and
made newer by ``set_routing`` (the coordinator pushes each table it publishes): its writer
routes each batch by the table held when the batch starts.

Invariants: a member refuses an epoch below one it has seen; its table only moves forward
(merged by ``moved_at``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec
import ray

from actors.committed import Clock, wall_ms
from actors.control_store import read_desired
from actors.liveness import Listener
from actors.logs import timestamped
from actors.messages import PartitionStats, PartitionStatus, Paused, Switched, ViewAt
from actors.opening import promote_partition
from actors.partition import PartitionWorker
from actors.ray_state import CONTROL
from actors.routes import Routes
from actors.standby import StandbyWorker
from topology.envelopes import Position
from topology.protocol import AnyAggregate
from topology.routing import RoutingTable
from topology.settings import Settings

if TYPE_CHECKING:
    from actors.shadow import Handover

__all__ = ["Member", "StaleEpochError"]

log = logging.getLogger(__name__)


class StaleEpochError(RuntimeError):
    """A promotion at an epoch below one the member has seen (an older coordinator's)."""


class Member:
    """Member ``member`` of partition ``partition`` of the application in ``settings``."""

    def __init__(
        self,
        settings: Settings,
        partition: int,
        member: int,
        aggregate: AnyAggregate,
        *,
        clock: Clock = wall_ms,
    ) -> None:
        timestamped()
        desired = read_desired(settings)
        record = desired.partition(partition)
        self.routes = Routes.of(desired, settings.partitions)
        self.settings, self.partition, self.member = settings, partition, member
        self.epoch = record.epoch
        self._aggregate, self._clock = aggregate, clock
        self._lock = threading.Lock()
        # held through a promotion (its own concurrency group): ``stop`` waits for it, and
        # ``stats`` says RESTORING while it is held
        self._promotion = threading.Lock()
        self._liveness = Listener(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
        self.writer: PartitionWorker | None = None
        self.standby: StandbyWorker | None = None
        if record.writer == member:
            self.writer = PartitionWorker(
                settings,
                partition,
                aggregate,
                generation=None,
                clock=clock,
                member=member,
                routes=self.routes,
            )
        else:
            self.standby = StandbyWorker(
                settings,
                partition,
                member,
                aggregate,
                generation=None,
                clock=clock,
                routes=self.routes,
            )

    @property
    def role(self) -> PartitionWorker | StandbyWorker:
        role = self.writer or self.standby
        assert role is not None
        return role

    def _writer(self) -> PartitionWorker:
        if self.writer is None:
            raise RuntimeError(f"partition {self.partition} member {self.member} is a standby")
        return self.writer

    # -- a takeover ------------------------------------------------------------------------

    def promote(self, epoch: int, sent_at: float | None = None) -> str:
        """Become the partition's writer at ``epoch`` (one the coordinator recorded first);
        returns the writer's status. ``sent_at``: the caller's wall time when it called, for
        the steps' ``call`` (how long the call took to arrive). Raises StaleEpochError for an
        epoch below one seen; a failed promotion stops the standby (the coordinator replaces
        it) and raises."""
        arrived = time.time()
        with self._promotion:
            return self._promote(epoch, arrived, sent_at)

    def _promote(self, epoch: int, arrived: float, sent_at: float | None) -> str:
        with self._lock:
            if epoch < self.epoch:
                raise StaleEpochError(f"epoch {epoch} is below {self.epoch}")
            self.epoch = epoch
            if self.writer is not None:
                return str(self.writer.status)
            standby = self.standby
            assert standby is not None
        began = time.monotonic()
        try:
            standby.halt()
            steps = {"halt": round((time.monotonic() - began) * 1000, 1)}
            if sent_at is not None:
                steps = {"call": round(max(0.0, arrived - sent_at) * 1000, 1), **steps}
            worker = PartitionWorker(
                self.settings,
                self.partition,
                self._aggregate,
                generation=standby.generation,
                start=False,
                clock=self._clock,
                member=self.member,
                committed=standby.committed,
                routes=self.routes,
            )
            ids = standby.ids
            assert ids is not None
            opened = promote_partition(
                self.settings,
                self.partition,
                standby.committed,
                counters=worker.counters,
                ids=ids,
                consumer=standby.commands(),
                drain=standby.drain,
                steps_ms=steps,
            )
            mark = time.monotonic()
            standby.hand_over()
            worker.start(opened)
            steps["start"] = round((time.monotonic() - mark) * 1000, 1)
            steps["total"] = round((time.monotonic() - began) * 1000, 1)
            worker.counters.takeover_steps_ms = steps
        except BaseException:
            log.exception("partition %d member %d: promotion failed", self.partition, self.member)
            standby.stop()
            raise
        with self._lock:
            self.writer, self.standby = worker, None
        log.warning(
            "partition %d member %d: took over at epoch %d in %s ms",
            self.partition,
            self.member,
            epoch,
            steps,
        )
        return str(worker.status)

    # -- lifecycle and the writer's moves --------------------------------------------------

    def ready(self) -> str:
        return self.role.ready()

    @ray.method(concurrency_group=CONTROL)
    def stop(self, timeout: float = 30.0) -> None:
        with self._promotion:  # a promotion under way ends first: then its role stops
            self.role.stop(timeout)

    @ray.method(concurrency_group=CONTROL)
    def pause(self, timeout: float = 30.0) -> Paused:
        return self._writer().pause(timeout)

    @ray.method(concurrency_group=CONTROL)
    def resume(self, generation: int | None = None) -> None:
        self._writer().resume(generation)

    @ray.method(concurrency_group=CONTROL)
    def switch_generation(
        self, generation: int, handover: Handover, aggregate: AnyAggregate | None = None
    ) -> Switched:
        return self._writer().switch_generation(generation, handover, aggregate)

    def set_routing(self, table: RoutingTable) -> int:
        """Merge a newer published table into the member's (by ``moved_at``; an older one
        changes nothing); its writer routes by it from its next batch. Returns the version
        held. A quick ask of the default group: it never waits behind a pause."""
        self.routes.merge(table)
        held = self.routes.table
        return 0 if held is None else held.version

    @ray.method(concurrency_group=CONTROL)
    def unblock(self, from_offset: int | None = None) -> str:
        return self._writer().unblock(from_offset)

    # -- queries ---------------------------------------------------------------------------

    def stats(self) -> PartitionStats:
        """The role's stats, with this member's epoch, liveness address and routing table
        version; a standby being promoted says RESTORING (it is neither following nor
        writing yet)."""
        promoting = self._promotion.locked()
        stats = self.role.stats()
        held = self.routes.table
        changes: dict[str, Any] = {
            "epoch": self.epoch,
            "liveness": self._liveness.address,
            "routing_version": 0 if held is None else held.version,
        }
        if promoting:
            changes["status"] = PartitionStatus.RESTORING
        return msgspec.structs.replace(stats, **changes)

    def get(self, aggregate_id: str) -> msgspec.Struct | None:
        return self.role.get(aggregate_id)

    def read(
        self, aggregate_id: str, min_version: int = 0, at_least: Position | None = None
    ) -> ViewAt:
        return self.role.read(aggregate_id, min_version, at_least)

    def read_batch(self, aggregate_ids: list[str]) -> list[ViewAt]:
        return self.role.read_batch(aggregate_ids)

    def views(self) -> dict[str, msgspec.Struct]:
        return self.role.views()

    def position(self) -> Position:
        return self.role.position()

    def holds_ids(self, keys: list[bytes]) -> list[bool]:
        """Whether a standby's id memory holds each id key (tests, diagnosis)."""
        standby = self.standby
        if standby is None:
            raise RuntimeError(f"partition {self.partition} member {self.member} writes")
        return standby.holds_ids(keys)
