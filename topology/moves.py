"""The records of a repartition's moves that more than one piece reads
(`docs/design-repartition.md`): the record-kind header, the coordinator's request
`MoveSlots`, and a partition's `SlotRecord`. Pure.

Invariants:

- A record of the flow itself (not a command or a domain event) carries the header
  `RECORD_HEADER` naming its `RecordKind`; it is honoured on the service's own topics
  (`internal`, `events`) only.
- A `SlotRecord` is written only in a handoff or an install transaction, before that
  transaction's checkpoint, under `SLOT_RECORD_KEY` in the partition's live snapshots
  generation; absent, partition p owns `{s : table0.owners[s] == p}` (Kafka's layout).
- A move's `version` is fresh (above every `moved_at` of its slots) and a slot is in at most
  one move at a time, so `RoutingTable.merge` of the records and tables is exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final

import msgspec

from topology.codec.wire import ENCODER, decoded
from topology.routing import RoutingTable

__all__ = [
    "MAX_PART_BYTES",
    "RECORD_HEADER",
    "SLOT_RECORD_KEY",
    "Arrival",
    "Departure",
    "Forwarded",
    "HandoffPart",
    "MoveSlots",
    "RecordKind",
    "SlotRecord",
    "decode_arrival",
    "decode_departure",
    "decode_forwarded",
    "decode_move",
    "decode_part",
    "decode_slot_record",
    "encode_forwarded",
    "encode_marker",
    "encode_move",
    "encode_part",
    "encode_slot_record",
    "kind_header",
    "part_position",
    "record_kind",
]

RECORD_HEADER: Final = "eventledger-record"
"""The header that tells the flow's own records from commands and events."""

SLOT_RECORD_KEY: Final = b"\xff\x00slots"
"""The snapshots-partition key of a partition's slot record (no aggregate id, id key or
checkpoint key has it: not UTF-8, not a msgpack array, not empty)."""


class RecordKind(StrEnum):
    """What a record carrying `RECORD_HEADER` is."""

    MOVE = "move"  # MoveSlots, on internal[source]
    HANDOFF = "handoff"  # a part of a handoff, on internal[target]
    FORWARDED = "forwarded"  # a client command forwarded to its owner, on internal[owner]
    DEPARTED = "departed"  # an account's departure marker, on events[source]
    ARRIVED = "arrived"  # an account's arrival marker, on events[target]


def record_kind(headers: Iterable[tuple[str, bytes]] | None) -> RecordKind | None:
    """The kind a record's headers name (None: a command or event). Raises ValueError for a
    value that names no kind."""
    if not headers:
        return None
    for name, value in headers:
        if name == RECORD_HEADER:
            return RecordKind(bytes(value).decode())
    return None


def kind_header(kind: RecordKind) -> tuple[str, bytes]:
    """The header that marks a record of the flow as `kind`."""
    return (RECORD_HEADER, kind.value.encode())


MAX_PART_BYTES: Final = 900_000
"""The most bytes of a `HandoffPart`'s items (librdkafka refuses a record over 1,000,000)."""


class MoveSlots(msgspec.Struct, frozen=True, array_like=True):
    """The coordinator's request that the partition reading it hand `slots` (ascending) to
    partition `target` at table version `version`, as move `move_id`."""

    move_id: str
    version: int
    slots: tuple[int, ...]
    target: int

    def __post_init__(self) -> None:
        if self.version < 1 or self.target < 0 or not self.slots:
            raise ValueError(f"a move needs a version >= 1, a target and slots: {self}")
        if list(self.slots) != sorted(set(self.slots)):
            raise ValueError("a move's slots are distinct and ascending")


class SlotRecord(msgspec.Struct, frozen=True, array_like=True):
    """A partition's own account of its slots: `table`, its routing table merged as of its
    last handoff or install, and `owned`, a bitmap of the slots it owns (bit s of byte s//8,
    least significant first). The partition decides a record only if it owns its slot."""

    table: RoutingTable
    owned: bytes

    def __post_init__(self) -> None:
        if len(self.owned) != (self.table.slots + 7) // 8:
            raise ValueError(f"{self.table.slots} slots need {(self.table.slots + 7) // 8} bytes")

    @classmethod
    def initial(cls, partition: int, table: RoutingTable) -> SlotRecord:
        """What partition `partition` owns before any move of its own: its slots in `table`."""
        return cls.of(table, (s for s, o in enumerate(table.owners) if o == partition))

    @classmethod
    def of(cls, table: RoutingTable, owned: Iterable[int]) -> SlotRecord:
        """The record of `table` owning the slots in the iterable `owned`."""
        bits = bytearray((table.slots + 7) // 8)
        for s in owned:
            bits[s // 8] |= 1 << (s % 8)
        return cls(table, bytes(bits))

    def elsewhere(self, key: bytes, published: RoutingTable | None, partition: int) -> int | None:
        """Where a read of the aggregate keyed `key` goes when partition `partition` (this
        record's) does not own its slot: the owner by this record's table merged with the
        `published` one; None when it owns the slot (or that table names this partition,
        which cannot tell better: the read is answered here)."""
        slot = self.table.slot_of(key)
        if self.owns(slot):
            return None
        table = self.table if published is None else self.table.merge(published)
        owner = table.owners[slot]
        return None if owner == partition else owner

    def owns(self, slot: int) -> bool:
        """Whether the partition owns `slot`."""
        return bool(self.owned[slot // 8] >> (slot % 8) & 1)

    def slots(self) -> list[int]:
        """The slots owned, ascending."""
        return [s for s in range(self.table.slots) if self.owns(s)]

    def holds(self, slots: tuple[int, ...], version: int) -> bool:
        """Whether this partition owns every one of `slots` as of a move at `version` or
        later: a target has installed that move (the driver's test before it publishes)."""
        return all(self.owns(s) and self.table.moved_at[s] >= version for s in slots)

    def gave(self, slots: tuple[int, ...], version: int) -> bool:
        """Whether this partition has given every one of `slots` away in a move at `version`
        or later: a source has handed that move off."""
        return all(not self.owns(s) and self.table.moved_at[s] >= version for s in slots)


class Departure(msgspec.Struct, frozen=True, array_like=True):
    """An account's departure marker on events[source]: from here on its events are on
    partition `moved_to` (move `move_id`). `sequence` is the account's version at the
    move: a marker takes no sequence of its own, so the account's events stay 1, 2, ...
    across partitions. A fold drops the account on meeting it."""

    aggregate_id: str
    moved_to: int
    move_id: str
    sequence: int


class Arrival(msgspec.Struct, frozen=True, array_like=True):
    """An account's arrival marker on events[target]: its events up to `sequence` are on
    partition `moved_from`, and `snapshot` is its snapshot record's value at the move
    (the state those events fold to). A fold installs the snapshot on meeting it."""

    aggregate_id: str
    moved_from: int
    move_id: str
    sequence: int
    snapshot: bytes


class Forwarded(msgspec.Struct, frozen=True, array_like=True):
    """A client command read by partition `by` (at its clock `read_ms`) for a slot it does
    not own, sent on to the owner's internal partition under the command's own key: `value`
    is the command record's value byte for byte. The receiver handles it as that client
    command (client admission, the id memory's judge, the reply on the client's lane);
    `read_ms` stands for the first attempt of a command that names none."""

    value: bytes
    by: int
    read_ms: int


class HandoffPart(msgspec.Struct, frozen=True, array_like=True):
    """Part `index` of `count` of move `move_id` (slots `slots` from partition `source` at
    version `version`), on the target's internal partition, keyed by the move id. All parts
    are produced in the source's handoff transaction; the target installs them together at
    the last one. `accounts` are (aggregate key, snapshot record value as stored), `ids` the
    accounts' id memory entries within the window (id key, `IdEntry` bytes), `lost` their
    lost legs' id keys. Part 0 alone carries the source's merged `table`, its `clock_ms` and
    `moved` (the moved balances' total, what the source's flows tallied as `moved_out`)."""

    move_id: str
    version: int
    slots: tuple[int, ...]
    source: int
    index: int
    count: int
    accounts: tuple[tuple[bytes, bytes], ...] = ()
    ids: tuple[tuple[bytes, bytes], ...] = ()
    lost: tuple[bytes, ...] = ()
    table: RoutingTable | None = None
    clock_ms: int = 0
    moved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"part {self.index} of {self.count}")
        if (self.index == 0) != (self.table is not None):
            raise ValueError("part 0, and it alone, carries the source's table")


class _PartHead(msgspec.Struct, frozen=True, array_like=True):
    move_id: str
    version: int
    slots: tuple[int, ...]
    source: int
    index: int
    count: int


_MOVE: Final = msgspec.msgpack.Decoder(MoveSlots)
_FORWARDED: Final = msgspec.msgpack.Decoder(Forwarded)
_PART: Final = msgspec.msgpack.Decoder(HandoffPart)
_PART_HEAD: Final = msgspec.msgpack.Decoder(_PartHead)
_DEPARTURE: Final = msgspec.msgpack.Decoder(Departure)
_ARRIVAL: Final = msgspec.msgpack.Decoder(Arrival)
_SLOT_RECORD: Final = msgspec.msgpack.Decoder(SlotRecord)


def encode_move(move: MoveSlots) -> bytes:
    return ENCODER.encode(move)


def decode_move(data: bytes) -> MoveSlots:
    """Raises CodecError for bytes that are not a MoveSlots."""
    return decoded(_MOVE, data, "a MoveSlots request")


def encode_slot_record(record: SlotRecord) -> bytes:
    return ENCODER.encode(record)


def decode_slot_record(data: bytes) -> SlotRecord:
    """Raises CodecError for bytes that are not a SlotRecord."""
    return decoded(_SLOT_RECORD, data, "a slot record")


def encode_marker(marker: Departure | Arrival) -> bytes:
    """A marker's value (its record carries `RECORD_HEADER` naming its kind)."""
    return ENCODER.encode(marker)


def decode_departure(data: bytes) -> Departure:
    """Raises CodecError for bytes that are not a departure marker."""
    return decoded(_DEPARTURE, data, "a departure marker")


def decode_arrival(data: bytes) -> Arrival:
    """Raises CodecError for bytes that are not an arrival marker."""
    return decoded(_ARRIVAL, data, "an arrival marker")


def encode_forwarded(forwarded: Forwarded) -> bytes:
    return ENCODER.encode(forwarded)


def decode_forwarded(data: bytes) -> Forwarded:
    """Raises CodecError for bytes that are not a Forwarded command."""
    return decoded(_FORWARDED, data, "a forwarded command")


def encode_part(part: HandoffPart) -> bytes:
    return ENCODER.encode(part)


def decode_part(data: bytes) -> HandoffPart:
    """Raises CodecError for bytes that are not a HandoffPart."""
    return decoded(_PART, data, "a handoff part")


def part_position(data: bytes) -> tuple[str, int, int]:
    """A handoff part's (move id, index, count), read from its head alone (the read loop's
    test that a batch does not end inside a move). Raises CodecError."""
    head = decoded(_PART_HEAD, data, "a handoff part")
    return head.move_id, head.index, head.count
