"""The committed state of one partition, held as encoded snapshot records.

Restoring a partition installs each snapshot record's bytes as they come (no decoding), and a
committed batch installs the snapshot records it produced; a slot is decoded only when a
command or a query touches its aggregate. So restore costs a dict insert per record, and an
aggregate at rest costs its snapshot's bytes (tens of bytes), not a tree of objects.
Invariant: every value held is a snapshot of the aggregate's current state schema.

A repartition's handoff asks for the aggregates of some slots (`in_slots`), from an index
slot → keys (one hash per aggregate). The partition's loop builds it between batches, in
bounded steps (`index_step`), once the application has slots; from its first step every load
indexes the keys it adds, and the steps cover the keys held when it began. A handoff that
comes before the build is done finishes it (correct, only slower); the handoffs after it
cost what they move, not the partition's size.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from topology.codec.aggregate import Codec
from topology.codec.keys import decode_key, encode_key
from topology.codec.snapshots import StaleSnapshotError
from topology.codec.wire import CodecError
from topology.envelopes import Slot

__all__ = ["SnapshotStore"]


class SnapshotStore(Mapping[str, Slot]):
    """Aggregate id → slot, read-only to the batch step; decoded on access."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._aggregate = codec.aggregate
        self._raw: dict[bytes, bytes] = {}
        self._slot_of: Callable[[bytes], int] | None = None  # the index's slot function
        self._by_slot: dict[int, set[bytes]] = {}  # slot → keys held, once indexing began
        self._pending: list[bytes] = []  # keys held when it began, not indexed yet

    def load(self, key: bytes | None, value: bytes | None) -> None:
        """Install one snapshot record as read from the topic (a tombstone deletes).
        Raises StaleSnapshotError for another state schema version (rebuild instead)."""
        if not key:  # None, or the checkpoint's key: not an aggregate's snapshot
            raise CodecError(f"not an aggregate's snapshot record: key {key!r}")
        if value is None:
            if self._raw.pop(key, None) is not None and self._slot_of is not None:
                self._by_slot.get(self._slot_of(key), set()).discard(key)
            return
        if not self.codec.snapshots.is_current(value):
            raise StaleSnapshotError(
                f"snapshot of {key!r} is not of this layout and {self._aggregate.name}'s state "
                f"schema version {self._aggregate.state_schema_version}"
            )
        if self._slot_of is not None and key not in self._raw:
            self._by_slot.setdefault(self._slot_of(key), set()).add(key)
        self._raw[key] = value

    def index_step(self, slot_of: Callable[[bytes], int], limit: int | None = None) -> bool:
        """Index at most `limit` more keys (None: all) by `slot_of`, the application's slot
        function (fixed for it; the first call's is kept); whether the index is complete.
        Invariant: once begun, every key held is indexed or pending, and a pending key
        deleted meanwhile is skipped."""
        if self._slot_of is None:
            self._slot_of = slot_of
            self._pending = list(self._raw)
        pending, raw, by_slot, slot_of = self._pending, self._raw, self._by_slot, self._slot_of
        for _ in range(len(pending) if limit is None else min(limit, len(pending))):
            key = pending.pop()
            if key in raw:
                by_slot.setdefault(slot_of(key), set()).add(key)
        return not pending

    def in_slots(self, slots: Iterable[int], slot_of: Callable[[bytes], int]) -> list[str]:
        """The aggregates held whose key's slot (`slot_of`, fixed for the application) is
        one of `slots`, sorted, from the index (finished first if the build is not done)."""
        self.index_step(slot_of)
        return sorted(decode_key(k) for s in slots for k in self._by_slot.get(s, ()))

    def install(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Install the (key, value) snapshot records of a committed batch."""
        for key, value in records:
            self.load(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        data = self._raw.get(encode_key(key))
        if data is None:
            return default
        snapshot = self.codec.snapshots.decode(data)
        if snapshot.aggregate_id != key:
            raise CodecError(f"snapshot of {snapshot.aggregate_id!r} under key {key!r}")
        return snapshot.slot

    def __getitem__(self, key: str) -> Slot:
        slot: Slot | None = self.get(key)
        if slot is None:
            raise KeyError(key)
        return slot

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and encode_key(key) in self._raw

    def __iter__(self) -> Iterator[str]:
        return (decode_key(k) for k in list(self._raw))

    def __len__(self) -> int:
        return len(self._raw)
