"""The history index's local RocksDB (``actors.history``): events under
``encode_history_key``, waypoints under ``encode_waypoint_key``, a repartition's seams under
``encode_seam_key``, and two records of its own:
the next events offset it reflects and the fold its waypoints come from.

Invariant: whatever one ``install`` writes (events, waypoints, the position) is one write
batch; with no write-ahead log a crash loses a suffix of the writes, never part of a batch,
so the store is always what the index held at some position.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import cast

import msgspec
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from topology.codec.keys import (
    encode_history_key,
    encode_waypoint_key,
    history_prefix,
    seam_prefix,
    waypoint_prefix,
)
from topology.history import Seam

__all__ = ["HistoryStore"]

log = logging.getLogger(__name__)

_POSITION = b"\xff\xffposition"  # a 2-byte length prefix of 0xffff: never an aggregate's key
_FOLD = b"\xff\xfffold"  # the fold the waypoints come from (WaypointCodec.fold)
_LAST = (1 << 64) - 1  # the largest sequence a key holds
_SEAM = msgspec.msgpack.Decoder(Seam)


class HistoryStore:
    """History key → event record value, waypoint key → waypoint value, the next events
    offset reflected and the fold the waypoints come from (``fold``: a store of another fold,
    or of none, is wiped when it opens). One writer (the tail thread); readers from any
    thread (RocksDB reads are thread-safe)."""

    def __init__(self, path: Path, fold: bytes) -> None:
        self.path, self._fold = path, fold
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _open(path)
        self._write = WriteOptions()
        # No write-ahead log: a crash loses a suffix, which the tail reads again.
        self._write.disable_wal = True  # type: ignore[method-assign, assignment]
        stored = self._db.get(_FOLD)
        if stored is None and not self.position():
            self._db.put(_FOLD, fold, self._write)  # a new index
        elif stored != fold:
            log.warning("%s holds waypoints of another fold (or none): rebuilding it", path)
            self.wipe()

    def position(self) -> int:
        raw = self._db.get(_POSITION)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def install(self, entries: dict[bytes, bytes], position: int) -> None:
        """Index ``entries`` (events and waypoints) and advance the position, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in entries.items():
            batch.put(key, value)
        batch.put(_POSITION, position.to_bytes(8, "big"))
        self._db.write(batch, self._write)

    def events(self, aggregate_id: str, after: int = 0, before: int = _LAST) -> Iterator[bytes]:
        """The aggregate's event record values with ``after`` < sequence < ``before``, in
        sequence order (a lazy iterator: one seek, then the next keys)."""
        prefix = history_prefix(aggregate_id)
        end = encode_history_key(aggregate_id, before)
        for key, value in self._db.items(from_key=encode_history_key(aggregate_id, after + 1)):
            found = cast(bytes, key)
            if not found.startswith(prefix) or found >= end:
                return
            yield cast(bytes, value)

    def event(self, aggregate_id: str, sequence: int) -> bytes | None:
        """The record value of the aggregate's event ``sequence`` (None: not indexed)."""
        return cast(bytes | None, self._db.get(encode_history_key(aggregate_id, sequence)))

    def last(self, aggregate_id: str) -> int:
        """The sequence of the aggregate's last indexed event (0: none)."""
        found = self._before(history_prefix(aggregate_id), encode_history_key(aggregate_id, _LAST))
        return 0 if found is None else found[0]

    def waypoint(self, aggregate_id: str, at_most: int) -> tuple[int, bytes] | None:
        """The aggregate's last waypoint at or before sequence ``at_most`` (any int >= 0):
        its sequence and value (None: there is none)."""
        key = encode_waypoint_key(aggregate_id, min(at_most, _LAST))
        return self._before(waypoint_prefix(aggregate_id), key)

    def seams(self, aggregate_id: str) -> list[Seam]:
        """The aggregate's seams, in (sequence, log) order (none: it never moved here or
        away)."""
        prefix = seam_prefix(aggregate_id)
        found = []
        for key, value in self._db.items(from_key=prefix):
            if not cast(bytes, key).startswith(prefix):
                break
            found.append(_SEAM.decode(cast(bytes, value)))
        return found

    def _before(self, prefix: bytes, key: bytes) -> tuple[int, bytes] | None:
        """The last entry at or before ``key`` under ``prefix``: the sequence its key ends
        with, and its value."""
        cursor = self._db.iter()
        cursor.seek_for_prev(key)
        if not cursor.valid():
            return None
        found = cast(bytes, cursor.key())
        if not found.startswith(prefix):
            return None
        return int.from_bytes(found[-8:], "big"), cast(bytes, cursor.value())

    def wipe(self) -> None:
        """Remove everything: an empty index of this store's fold."""
        self._db.close()
        Rdict.destroy(str(self.path))
        self._db = _open(self.path)
        self._db.put(_FOLD, self._fold, self._write)

    def close(self) -> None:
        with suppress(Exception):
            self._db.flush()
        self._db.close()


def _open(path: Path) -> Rdict:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(Cache(16 * 1024 * 1024))
    options.set_block_based_table_factory(table)
    return Rdict(str(path), options)
