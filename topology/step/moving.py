"""A repartition's moves in the batch step (`docs/design-repartition.md`, "A move, step by
step"): the handoff, where the source meets the coordinator's `MoveSlots` and gives the
slots away, and the install, where the target meets the handoff's parts and takes them.

Invariants:

- A handoff happens only if the partition owns every slot of the move below the move's
  version, an install only if the target does not hold them at that version yet; anything
  else is a copy of a move already made, skipped (`SkipCode.STALE_MOVE`).
- The handoff's parts are the transaction's first records on the target's internal
  partition, so everything this partition forwards there later follows them.
- A batch ends at a handoff or an install (the caller stops reading there): the records
  after it are read again by the next batch, which runs with the new slot record, so no
  batch decides or routes with a slot record that changed under it.
- Markers take no sequence: an account's version moves with it unchanged.

Cost: a handoff finds the moved accounts in the store's slot index, then asks the id
memory for the entries of the slots (its own slot index of the aggregates it remembers),
then a prefix scan per aggregate, so a handoff costs what it moves; an install decodes each
moved snapshot once. The partition's loop builds both indexes ahead, between batches
(`actors.slotindex`); built inside the handoff (one hash per aggregate held) they took 1.4 s
at 250,000 accounts, and a handoff that comes before the build ends still finishes it.
"""

from collections.abc import Callable, Iterator

from topology.codec.keys import encode_key, id_key_aggregate
from topology.codec.replies import decode_entry
from topology.codes import SkipCode
from topology.idempotency import IdMemory, entries_in_slots
from topology.moves import (
    MAX_PART_BYTES,
    Arrival,
    Departure,
    HandoffPart,
    MoveSlots,
    RecordKind,
    SlotRecord,
    encode_marker,
    encode_part,
    kind_header,
)
from topology.routing import RoutingTable
from topology.step.context import StepContext
from topology.step.guard import SizeGuard
from topology.step.output import Output
from topology.step.records import InRecord, OutcomeKind, OutRecord, origin
from topology.step.state import LostLegs, Slots, Tally
from topology.topics import TopicKind

__all__ = ["Moves"]

_ITEM_OVERHEAD = 16  # msgpack framing per item, generously


class Moves:
    """The moves one batch makes: what it hands off or installs, and what to install once
    it commits (`record`, `departed`, `clock_ms`, the tombstones)."""

    def __init__(
        self,
        context: StepContext,
        slots: Slots,
        output: Output,
        tally: Tally,
        legs: LostLegs,
        *,
        ids: IdMemory,
        guard: SizeGuard,
    ) -> None:
        self._context = context
        self._slots = slots
        self._output = output
        self._tally = tally
        self._legs = legs
        self._ids = ids
        self._guard = guard
        self._parts: dict[str, list[HandoffPart]] = {}
        self.record: SlotRecord | None = None
        self.departed: frozenset[str] = frozenset()
        self.clock_ms: int | None = None
        self.move_id: str | None = None  # the move made (handed off or installed)
        self.tombstones: list[OutRecord] = []  # snapshots and state, of the departed

    # -- the source: the handoff -----------------------------------------------------------

    def hand_off(self, record: InRecord, move: MoveSlots) -> bool:
        """Give `move`'s slots to its target (see the module docstring); whether it was
        made (the batch then ends here)."""
        context = self._context
        mine = context.slots
        if mine is None:
            raise ValueError("a handoff needs the partition's slot record")
        table = mine.table
        if move.target == context.partition or not all(
            s < table.slots and mine.owns(s) and table.moved_at[s] < move.version
            for s in move.slots
        ):
            self._output.outcome(record, None, OutcomeKind.DUPLICATE, SkipCode.STALE_MOVE)
            return False
        group = frozenset(move.slots)
        accounts = self._slots.in_slots(group, table.slot_of)
        moved, total = [], 0
        for aggregate_id in accounts:
            slot = self._slots.get(aggregate_id)
            if slot is None:
                continue
            moved.append((encode_key(aggregate_id), self._guard.snapshot(aggregate_id, slot)))
            total += self._tally.balance_of(slot.state)
            self._depart(record, aggregate_id, slot.version, move)
        entries = self._entries(group, table.slot_of)
        lost = sorted(
            k for k in self._legs.lost if table.slot_of(encode_key(id_key_aggregate(k))) in group
        )
        self._legs.remove(lost)
        self._slots.drop(accounts)
        self._tally.moved(out=move.target, amount=total)
        given = table.assign(move.slots, move.target, move.version)
        effective = context.router.table
        after = given if effective is None else effective.merge(given)
        self.record = SlotRecord.of(after, (s for s in mine.slots() if s not in group))
        self.departed = frozenset(accounts)
        self.move_id = move.move_id
        parts = _parts(move, context, after, total, accounts=moved, entries=entries, lost=lost)
        source = origin(record.offset, record.internal)
        self._output.internal[:0] = [
            OutRecord(
                TopicKind.INTERNAL,
                move.target,
                move.move_id.encode(),
                encode_part(part),
                [kind_header(RecordKind.HANDOFF)],
                source,
            )
            for part in parts
        ]
        self._output.outcome(record, None, OutcomeKind.ACCEPTED, None)
        return True

    def _depart(self, record: InRecord, aggregate_id: str, version: int, move: MoveSlots) -> None:
        """The departure marker and the tombstones of one account handed off."""
        context = self._context
        key = encode_key(aggregate_id)
        source = origin(record.offset, record.internal)
        marker = encode_marker(Departure(aggregate_id, move.target, move.move_id, version))
        self._output.events.append(
            OutRecord(
                TopicKind.EVENTS,
                context.partition,
                key,
                marker,
                [kind_header(RecordKind.DEPARTED)],
                source,
            )
        )
        for kind in (TopicKind.SNAPSHOTS, TopicKind.STATE):
            self.tombstones.append(OutRecord(kind, context.partition, key, None, [], None))

    def _entries(
        self, slots: frozenset[int], slot_of: Callable[[bytes], int]
    ) -> list[tuple[bytes, bytes]]:
        """The id memory's entries of `slots` within the window, this batch's over the
        memory's: of every aggregate of the slots, held or not (a command refused for want
        of its account is remembered, and its retry must be answered by the target)."""
        entries = dict(self._ids.entries_in(slots, slot_of))
        entries.update(entries_in_slots(self._output.remembered.items(), slots, slot_of))
        oldest = self._context.now_ms - self._context.window_ms
        return sorted(
            (k, v) for k, v in entries.items() if decode_entry(v).first_attempt_ms >= oldest
        )

    # -- the target: the install -----------------------------------------------------------

    def take(self, record: InRecord, part: HandoffPart) -> bool:
        """A part of a move to this partition: kept until its last part, where the move is
        installed (the batch then ends here); whether it was."""
        mine = self._context.slots
        if mine is None:
            raise ValueError("an install needs the partition's slot record")
        if all(s < mine.table.slots for s in part.slots) and mine.holds(part.slots, part.version):
            self._output.outcome(record, None, OutcomeKind.DUPLICATE, SkipCode.STALE_MOVE)
            return False
        self._parts.setdefault(part.move_id, []).append(part)
        if part.index < part.count - 1:
            return False
        parts = sorted(self._parts.pop(part.move_id), key=lambda p: p.index)
        if [p.index for p in parts] != list(range(part.count)):
            raise ValueError(
                f"move {part.move_id}: a batch holds parts {[p.index for p in parts]} "
                f"of {part.count}, not all of them"
            )
        self._install(record, parts, mine)
        self._output.outcome(record, None, OutcomeKind.ACCEPTED, None)
        return True

    def _install(self, record: InRecord, parts: list[HandoffPart], mine: SlotRecord) -> None:
        context = self._context
        first = parts[0]
        assert first.table is not None  # HandoffPart checks it
        source = origin(record.offset, record.internal)
        decode = context.codec.snapshots.decode
        for part in parts:
            for _, value in part.accounts:
                snapshot = decode(value)
                self._slots.put(snapshot.aggregate_id, snapshot.slot)
                marker = Arrival(
                    snapshot.aggregate_id,
                    first.source,
                    first.move_id,
                    snapshot.slot.version,
                    value,
                )
                self._output.events.append(
                    OutRecord(
                        TopicKind.EVENTS,
                        context.partition,
                        encode_key(snapshot.aggregate_id),
                        encode_marker(marker),
                        [kind_header(RecordKind.ARRIVED)],
                        source,
                    )
                )
            for key, value in part.ids:
                self._output.remember(record, None, key, value)
            for key in part.lost:
                self._legs.add(key)
        self._tally.moved(into=first.source, amount=first.moved)
        effective = context.router.table
        table = first.table if effective is None else effective.merge(first.table)
        self.record = SlotRecord.of(table, [*mine.slots(), *first.slots])
        self.move_id = first.move_id
        if first.clock_ms > context.now_ms:
            self.clock_ms = first.clock_ms


def _parts(
    move: MoveSlots,
    context: StepContext,
    table: RoutingTable,
    total: int,
    *,
    accounts: list[tuple[bytes, bytes]],
    entries: list[tuple[bytes, bytes]],
    lost: list[bytes],
) -> list[HandoffPart]:
    """The handoff's parts, each's items under `MAX_PART_BYTES` (part 0 also carries the
    table, the clock and the total)."""
    empty = HandoffPart(
        move.move_id,
        move.version,
        move.slots,
        context.partition,
        0,
        1,
        table=table,
        clock_ms=context.now_ms,
        moved=total,
    )
    room = MAX_PART_BYTES - len(encode_part(empty))
    cuts: list[tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], list[bytes]]] = []
    current: tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], list[bytes]] = (
        [],
        [],
        [],
    )
    size = 0
    for which, item, length in _items(accounts, entries, lost):
        if size + length > room and size:
            cuts.append(current)
            current, size, room = ([], [], []), 0, MAX_PART_BYTES
        current[which].append(item)  # type: ignore[arg-type]
        size += length
    cuts.append(current)
    count = len(cuts)
    return [
        HandoffPart(
            move.move_id,
            move.version,
            move.slots,
            context.partition,
            i,
            count,
            tuple(a),
            tuple(e),
            tuple(k),
            table if i == 0 else None,
            context.now_ms if i == 0 else 0,
            total if i == 0 else 0,
        )
        for i, (a, e, k) in enumerate(cuts)
    ]


def _items(
    accounts: list[tuple[bytes, bytes]], entries: list[tuple[bytes, bytes]], lost: list[bytes]
) -> Iterator[tuple[int, tuple[bytes, bytes] | bytes, int]]:
    """(which list, item, its size) of every item a handoff carries, in order."""
    for pair in accounts:
        yield 0, pair, len(pair[0]) + len(pair[1]) + _ITEM_OVERHEAD
    for pair in entries:
        yield 1, pair, len(pair[0]) + len(pair[1]) + _ITEM_OVERHEAD
    for key in lost:
        yield 2, key, len(key) + _ITEM_OVERHEAD
