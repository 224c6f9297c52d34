"""Who owns what, as the committed logs say, for the checker (`docs/design-repartition.md`,
"Invariants" 1, 2, 4 and 5): every slot is owned by exactly one partition's committed slot
record or by one committed and uninstalled handoff; a partition decides only what it owns;
an account departs only from where it lives and arrives only where it departed to, with the
state it left with; the published table names a partition only once it holds the slot.

Read from the logs after every step, every committed transaction's records (markers landed
or not): the slot records (`SLOT_RECORD_KEY` in `snapshots[p]`), the handoffs' parts in
`internal[q]`, and the markers the checker meets while it folds `events[p]`. Before the
application has slots, the owner of an account is Kafka's layout over the original count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from topology.codec.keys import encode_key
from topology.moves import (
    SLOT_RECORD_KEY,
    HandoffPart,
    RecordKind,
    SlotRecord,
    decode_arrival,
    decode_departure,
    decode_part,
    decode_slot_record,
    record_kind,
)
from topology.partitioner import partition_for
from topology.routing import RoutingTable
from topology.topics import TopicKind

if TYPE_CHECKING:
    from eventledger.sim.world import World
    from topology.envelopes import Slot

__all__ = ["Ownership"]


class Ownership:
    """The slots' and the accounts' owners, as committed so far. `broke` is a (rule,
    message) for the checker to raise, or None."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.initial: RoutingTable | None = None  # the table at version 0, once slots exist
        self.records: dict[int, SlotRecord] = {}  # partition → its last committed slot record
        self.transit: dict[str, tuple[HandoffPart, int]] = {}  # move → (part 0, target)
        self.owners: list[int | None] = []  # slot → its owner (None: in a handoff)
        self.location: dict[str, int | None] = {}  # account → where it lives (None: moving)
        self.moving: dict[str, tuple[int, int, str]] = {}  # account → (from, to, move id)
        self.published = 0  # the version of the published table last checked
        self._read: dict[tuple[TopicKind, int], int] = {}
        self.departures = 0
        self.arrivals = 0

    # -- the owner of an account ------------------------------------------------------------

    def owner(self, account: str) -> int | None:
        """The partition that owns `account` now (None: it is in a handoff)."""
        where = self.location.get(account, -1)
        if where != -1:
            return where
        key = encode_key(account)
        if self.initial is None or not self.owners:
            return partition_for(key, self.world.config.partitions)
        return self.owners[self.initial.slot_of(key)]

    def decided(self, account: str, partition: int) -> tuple[str, str] | None:
        """Partition `partition` decided a record of `account`: it must own it."""
        owner = self.owner(account)
        if owner != partition:
            where = "a handoff" if owner is None else f"p{owner}"
            return "executed", f"p{partition} decided a record of {account!r}, owned by {where}"
        return None

    def event(self, account: str, partition: int) -> tuple[str, str] | None:
        """An event of `account` on `partition` (not a marker): written by its owner."""
        broke = self.decided(account, partition)
        if broke is None:
            self.location[account] = partition
        return broke

    def marker(
        self, kind: RecordKind, value: bytes, partition: int, states: dict[str, Slot]
    ) -> tuple[str, str] | None:
        """A departure or arrival marker on `events[partition]`; `states` is the fold of
        the events so far (the state an account leaves and arrives with)."""
        if kind is RecordKind.DEPARTED:
            gone = decode_departure(value)
            a = gone.aggregate_id
            if self.location.get(a) != partition:
                return (
                    "ownership",
                    f"{a!r} departs p{partition} but lives on {self.location.get(a)}",
                )
            if _version(states, a) != gone.sequence:
                return (
                    "events",
                    f"{a!r} departs at {gone.sequence}, its events at {_version(states, a)}",
                )
            self.location[a] = None
            self.moving[a] = (partition, gone.moved_to, gone.move_id)
            self.departures += 1
            return None
        came = decode_arrival(value)
        a = came.aggregate_id
        expected = self.moving.pop(a, None)
        if expected != (came.moved_from, partition, came.move_id):
            return "ownership", f"{a!r} arrives on p{partition} by {came.move_id}, not {expected}"
        snapshot = self.world.codec.snapshots.decode(came.snapshot)
        if snapshot.slot != states.get(a) or came.sequence != _version(states, a):
            return "moved", f"{a!r} arrives on p{partition} as {snapshot.slot}, not {states.get(a)}"
        self.location[a] = partition
        self.arrivals += 1
        return None

    # -- the slots ----------------------------------------------------------------------------

    def scan(self) -> tuple[str, str] | None:
        """Read the slot records and handoffs committed since the last scan; check that
        every slot has one owner, and the published table."""
        w = self.world
        if self.initial is None:
            table = w.repartition.published
            if table is None:
                return None
            self.initial = RoutingTable.initial(w.config.partitions, table.slots)
        changed = not self.owners
        for p in range(w.count):
            for record in self._new(TopicKind.SNAPSHOTS, p):
                if record.key == SLOT_RECORD_KEY:
                    self.records[p] = decode_slot_record(record.value or b"")
                    changed = True
            for record in self._new(TopicKind.INTERNAL, p):
                if record_kind(record.headers) is RecordKind.HANDOFF:
                    part = decode_part(record.value or b"")
                    if part.index == 0:
                        self.transit[part.move_id] = (part, p)
                        changed = True
        if changed:
            broke = self._recount()
            if broke is not None:
                return broke
        return self._check_published()

    def _new(self, kind: TopicKind, p: int) -> list[Any]:
        log = self.world.logs.log(kind, p)
        records = list(log.decided(self._read.get((kind, p), 0)))
        self._read[kind, p] = log.decided_end()
        return records

    def _recount(self) -> tuple[str, str] | None:
        initial = self.initial
        assert initial is not None
        for move_id, (part, target) in list(self.transit.items()):
            record = self.records.get(target)
            if record is not None and record.holds(part.slots, part.version):
                del self.transit[move_id]  # installed
        holders: list[list[str]] = [[] for _ in range(initial.slots)]
        for p in range(self.world.count):
            record = self.records.get(p) or SlotRecord.initial(p, initial)
            for s in record.slots():
                holders[s].append(f"p{p}")
        for move_id, (part, target) in self.transit.items():
            for s in part.slots:
                holders[s].append(f"the handoff of {move_id} to p{target}")
        for s, held in enumerate(holders):
            if len(held) != 1:
                return "ownership", f"slot {s} is owned by {held or 'no one'}"
        self.owners = [int(h[0][1:]) if h[0].startswith("p") else None for h in holders]
        return None

    def _check_published(self) -> tuple[str, str] | None:
        table = self.world.repartition.published
        if table is None or table.version <= self.published:
            return None
        for s, (owner, at) in enumerate(zip(table.owners, table.moved_at, strict=True)):
            if at <= self.published:
                continue
            record = self.records.get(owner)
            if record is None or not record.owns(s) or record.table.moved_at[s] < at:
                return (
                    "published",
                    f"the table names p{owner} for slot {s} at v{at} before its install",
                )
        self.published = table.version
        return None


def _version(states: dict[str, Slot], account: str) -> int:
    slot = states.get(account)
    return 0 if slot is None else slot.version
