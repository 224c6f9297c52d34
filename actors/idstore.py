"""The idempotency memory of one partition: its entries (`topology.envelopes.IdEntry`, an
answered id or one whose answer is deferred) in a local RocksDB, restored from the replies
topic, its changelog (as Kafka Streams restores a store from its changelog).

Why on disk: a busy service remembers tens of millions of ids inside a 24 h window, far more
than fits beside the aggregates in an actor's memory; RocksDB keeps them on local disk with a
Bloom filter per file, so the common lookup (a new id) costs no disk read, and its memory is
bounded by its write buffers and block cache whatever the rate and the window.

Invariants:
- it only holds replies of committed transactions: the actor installs a batch's replies after
  its commit, and restore reads the changelog ``read_committed`` after fencing;
- the positions it stores (next offset per replies partition) are written in the same write
  batch as the replies they cover, so a store read after any crash is a prefix of the
  changelog and restore goes on from where it stands;
- a store whose positions lie beyond the changelog's end belongs to an older incarnation of
  the topic and is wiped; a new disk restores only the part of the changelog within the
  window (by timestamp), never the whole topic;
- entries live at least the changelog's retention (RocksDB TTL), which covers the window;
- once its slot index began (`index_step`, the partition's loop between batches once the
  application has slots; else the first `entries_in`), every install indexes the aggregates
  it adds, and the build's steps cover the keys held when it began (one RocksDB iterator,
  whose view is fixed at its creation, skipping past each aggregate's keys).

(Over 400 lines: restore, follow and the slot index share one RocksDB handle and these
invariants.)
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import msgspec
from confluent_kafka import Consumer, TopicPartition
from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    RdictIter,
    WriteBatch,
    WriteOptions,
)

from actors.kafka import consumer_config
from actors.memory import release_freed_memory
from actors.scan import scan_partition
from actors.watermarks import watermarks
from topology.codec.keys import id_key_prefixes
from topology.idempotency import latest_entries, replies_retention_ms
from topology.names import Names
from topology.settings import Settings
from topology.step.records import UNREMEMBERED_KEY_PREFIX
from topology.topics import TopicKind, TopicLayout

__all__ = ["IdMemoryBehindError", "IdRestore", "IdStore", "open_id_store"]

log = logging.getLogger(__name__)

_POSITIONS = b"\x00positions"  # not a msgpack array: never an id key
_POSITIONS_CODEC = msgspec.msgpack.Decoder(dict[int, int])
_WRITE_BUFFER_BYTES = 16 * 1024 * 1024
_BLOCK_CACHE_BYTES = 16 * 1024 * 1024
_RESTORE_BATCH = 20_000
_RESTORE_CONSUMER = {
    "enable.partition.eof": True,
    "fetch.wait.max.ms": 100,
    "max.partition.fetch.bytes": 32 * 1024 * 1024,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "queued.max.messages.kbytes": 16 * 1024,
}


class IdMemoryBehindError(RuntimeError):
    """The id memory cannot be brought up to the state's checkpoint: the partition must not
    run (a retry of one of its last ids could be executed again)."""


@dataclass(frozen=True)
class IdRestore:
    """What a restore read: changelog records, ids installed, seconds, and whether the local
    store was reused (False: a new or wiped disk, restored from the window's start)."""

    records: int
    installed: int
    seconds: float
    reused: bool


class IdStore:
    """Id key → encoded id memory entry, on local disk. Not thread-safe: one writer."""

    def __init__(self, path: Path, ttl_seconds: int, *, scratch: bool = False) -> None:
        self.path = path
        self._scratch = scratch  # a private copy to delete on close (the usual one was locked)
        self._ttl = ttl_seconds
        self._db = _open(path, ttl_seconds)
        self._write = WriteOptions()
        # No write-ahead log (see the module docstring: a crash loses a suffix only). The
        # package's stub declares a method; at run time it is a property.
        self._write.disable_wal = True  # type: ignore[method-assign, assignment]
        self._slot_of: Callable[[bytes], int] | None = None  # the index's slot function
        self._slot_at: dict[bytes, int] = {}  # aggregate key → slot, once indexing began
        self._by_slot: dict[int, set[bytes]] = {}  # slot → aggregate keys remembered
        self._pending: RdictIter | None = None  # the build's place in the keys it began with

    def lookup(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The encoded entry of each key (None: not remembered), in one batched read."""
        if not keys:
            return []
        return cast(list[bytes | None], self._db[list(keys)])

    def entries_in(
        self, slots: frozenset[int], slot_of: Callable[[bytes], int]
    ) -> list[tuple[bytes, bytes]]:
        """Every entry, sorted, of the aggregates whose key's slot is in `slots`, held in
        state or not (`topology.idempotency.IdMemory`), from the slot index (finished first
        if its build is not done; the same `slot_of` is expected: it never changes), then a
        prefix scan per aggregate. The index may name aggregates whose ids RocksDB's TTL
        dropped: they scan to nothing."""
        if self._slot_of is None or self._pending is not None:
            log.info("%s: a handoff finishes the slot index's build", self.path)
        self.index_step(slot_of)
        found = [a.decode() for s in slots for a in self._by_slot.get(s, ())]
        return sorted(self._entries_of(found))

    def index_step(self, slot_of: Callable[[bytes], int], limit: int | None = None) -> bool:
        """Index at most `limit` more aggregates (None: all) by `slot_of`, the application's
        slot function (fixed for it; the first call's is kept); whether the index is
        complete. The first call opens an iterator over the keys as they are then; each
        aggregate costs one hash and one seek past its keys (an aggregate's id keys of one
        shape are contiguous), not a step per id."""
        if self._slot_of is None:
            self._slot_of = slot_of
            self._pending = self._db.iter()
            self._pending.seek_to_first()
        it = self._pending
        if it is None:
            return True
        done = 0
        while it.valid() and (limit is None or done < limit):
            key = cast(bytes, it.key())
            span = _aggregate_span(key)
            if span is None:  # the positions, or a key of no aggregate
                it.next()
                continue
            self._add(key[span[0] : span[1]])
            done += 1
            it.seek(_past(key[: span[1]]))
        if it.valid():
            return False
        self._pending = None
        log.info("%s: slot index built, %d aggregates", self.path, len(self._slot_at))
        return True

    def _index(self, key: bytes) -> None:
        """Index the aggregate of id key `key` (another key: nothing)."""
        span = _aggregate_span(key)
        if span is not None:
            self._add(key[span[0] : span[1]])

    def _add(self, aggregate: bytes) -> None:
        """Index aggregate key `aggregate` (once)."""
        assert self._slot_of is not None
        if aggregate not in self._slot_at:
            slot = self._slot_of(aggregate)
            self._slot_at[aggregate] = slot
            self._by_slot.setdefault(slot, set()).add(aggregate)

    def _entries_of(self, aggregate_ids: Sequence[str]) -> list[tuple[bytes, bytes]]:
        """Every entry of `aggregate_ids` (both id key shapes), by a prefix scan each; it
        may include entries past the window that RocksDB's TTL has not dropped yet."""
        found: list[tuple[bytes, bytes]] = []
        it = self._db.iter()
        try:
            for aggregate_id in aggregate_ids:
                for prefix in id_key_prefixes(aggregate_id):
                    it.seek(prefix)
                    while it.valid():
                        key = cast(bytes, it.key())
                        if not key.startswith(prefix):
                            break
                        found.append((key, cast(bytes, it.value())))
                        it.next()
        finally:
            del it
        return found

    def positions(self) -> dict[int, int]:
        """Next changelog offset per replies partition that this store reflects."""
        raw = self._db.get(_POSITIONS)
        return {} if raw is None else _POSITIONS_CODEC.decode(raw)

    def install(self, entries: dict[bytes, bytes], positions: dict[int, int]) -> None:
        """Remember `entries` and advance the positions, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in entries.items():
            batch.put(key, value)
            if self._slot_of is not None:
                self._index(key)
        if positions:
            merged = {**self.positions(), **positions}
            batch.put(_POSITIONS, msgspec.msgpack.encode(merged))
        self._db.write(batch, self._write)

    def wipe(self) -> None:
        """Forget everything (the store belongs to an older incarnation of the topic)."""
        self._pending = None  # an iterator must not outlive its database
        self._db.close()
        Rdict.destroy(str(self.path))
        self._db = _open(self.path, self._ttl)
        self._slot_of, self._slot_at, self._by_slot = None, {}, {}

    def compact(self) -> None:
        """Compact the whole store now (RocksDB does it on its own as files accumulate)."""
        self._db.compact_range(None, None)

    def disk_bytes(self) -> int:
        """Bytes of the store's files on disk."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def close(self) -> None:
        self._pending = None  # an iterator must not outlive its database
        with suppress(Exception):
            self._db.flush()
        self._db.close()
        if self._scratch:
            shutil.rmtree(self.path, ignore_errors=True)

    def restore(
        self,
        settings: Settings,
        partition: int,
        now_ms: int,
        *,
        expect: Mapping[int, tuple[bytes, int]] | None = None,
        wait: float = 15.0,
    ) -> IdRestore:
        """Read the changelog (the replies partitions `partition` writes) from the stored
        positions to its end; from the window's start where there are none. Then make sure
        the memory holds every id key the checkpoint's marks (`expect`) name, reading again
        for up to `wait` seconds while the changelog is not visible that far. A local store
        that still lacks one is not trusted: it is wiped and restored from the window's
        start. Raises `IdMemoryBehindError` when even that lacks a mark (the memory would be
        behind the state: retries of its last ids could run twice)."""
        started = time.monotonic()
        topic = TopicLayout.of(settings).name(TopicKind.REPLIES)
        consumer = Consumer(
            consumer_config(settings, group_id=Names.of(settings).group("ids"), **_RESTORE_CONSUMER)
        )
        parts = TopicLayout.of(settings).replies_of(partition)
        retention = replies_retention_ms(settings.idempotency_window_ms)
        marks = {p: m for p, m in (expect or {}).items() if p in parts}
        try:
            stored = self.positions()
            records, installed, reused = self._catch_up(consumer, topic, parts, now_ms - retention)
            behind = self._await(consumer, topic, marks, now_ms - retention, wait)
            if behind:
                log.error(
                    "%s: the local store lacks the checkpoint's last remembered replies on "
                    "replies partitions %s, which the changelog holds (%s); wiping it and "
                    "restoring from the window's start",
                    self.path,
                    behind,
                    _where(settings, topic, {p: marks[p][0] for p in behind}, self.positions()),
                )
                self.wipe()
                read, put, reused = self._catch_up(consumer, topic, parts, now_ms - retention)
                records, installed = records + read, installed + put
                behind = self._await(consumer, topic, marks, now_ms - retention, wait)
            if behind:
                where = _where(settings, topic, {p: marks[p][0] for p in behind}, self.positions())
                raise IdMemoryBehindError(
                    f"{self.path}: the replies partitions {behind} lack the checkpoint's last "
                    f"remembered replies even from the window's start; the partition does not "
                    f"run with an id memory behind its state ({where})"
                )
        finally:
            consumer.close()
        log.info(
            "%s: restored %d ids from %d changelog records, from %s to %s",
            self.path,
            installed,
            records,
            stored or "the window's start",
            self.positions(),
        )
        self._db.flush()  # what was restored survives a crash: the next start goes on from it
        release_freed_memory()
        return IdRestore(records, installed, time.monotonic() - started, reused)

    def _catch_up(
        self, consumer: Consumer, topic: str, parts: Sequence[int], since_ms: int
    ) -> tuple[int, int, bool]:
        """Scan each replies partition from its stored position (from `since_ms` when there
        is none) to its visible end; (records read, ids installed, whether the store was
        reused). A store whose positions lie beyond the changelog's end is wiped first."""
        bounds = {p: watermarks(consumer, TopicPartition(topic, p)) for p in parts}
        stored = self.positions()
        reused = bool(stored)
        if any(stored.get(p, 0) > high for p, (_, high) in bounds.items()):
            log.warning("%s: the id store is ahead of the changelog; wiping it", self.path)
            self.wipe()
            stored, reused = {}, False
        records = installed = 0
        for p in parts:
            low, high = bounds[p]
            start = stored.get(p)
            if start is None:
                start = _offset_at(consumer, TopicPartition(topic, p), since_ms, high)
            read, put = self._scan(
                consumer, TopicPartition(topic, p, max(start, low)), merge=len(parts) > 1
            )
            records, installed = records + read, installed + put
        return records, installed, reused

    def _await(
        self,
        consumer: Consumer,
        topic: str,
        marks: Mapping[int, tuple[bytes, int]],
        since_ms: int,
        wait: float,
    ) -> list[int]:
        """Read on while a replies partition's marked key is missing, for up to `wait`
        seconds (after a broker restart a changelog can become visible late); the replies
        partitions still missing theirs."""
        deadline = time.monotonic() + wait
        while (behind := self._behind(marks, since_ms)) and time.monotonic() < deadline:
            log.warning("%s: replies partitions %s lag the checkpoint; reading again",
                        self.path, behind)  # fmt: skip
            time.sleep(0.5)
            positions = self.positions()
            for p in behind:
                self._scan(consumer, TopicPartition(topic, p, positions.get(p, 0)), merge=True)
        return behind

    def _scan(
        self, consumer: Consumer, partition: TopicPartition, *, merge: bool
    ) -> tuple[int, int]:
        """Install the id memory entries of `partition` from its offset to its visible end;
        (records read, ids installed). The position stored is the offset the read_committed
        scan reached, not the end offset: what lies beyond it is read again next time.
        `merge`: the memory has other replies partitions (reply lanes), so an entry older
        than the one held for its id is not installed (one partition alone is in order, and
        its later entries win without a lookup)."""
        reached = partition.offset  # the next offset the scan did not read
        records = installed = 0
        batch: dict[bytes, bytes] = {}
        for msg in scan_partition(consumer, partition):
            records += 1
            reached = msg.offset() + 1
            entry = _entry(msg)
            if entry is None:
                continue
            batch[entry[0]] = entry[1]
            if len(batch) >= _RESTORE_BATCH:
                batch = self._newer(batch) if merge else batch
                installed += len(batch)
                self.install(batch, {})
                batch = {}
        batch = self._newer(batch) if merge else batch
        installed += len(batch)
        self.install(batch, {partition.partition: reached})
        return records, installed

    def follow(self, partition: int, messages: Sequence[Any], *, merge: bool) -> int:
        """A standby's tail: install the entries of ``messages``, consumed in offset order
        (read_committed) from replies partition ``partition``, and store the position after
        the last, in one write; the ids installed. ``merge`` as in ``_scan``."""
        if not messages:
            return 0
        batch = {e[0]: e[1] for m in messages if (e := _entry(m)) is not None}
        batch = self._newer(batch) if merge and batch else batch
        self.install(batch, {partition: messages[-1].offset() + 1})
        return len(batch)

    def _newer(self, batch: dict[bytes, bytes]) -> dict[bytes, bytes]:
        """The entries of `batch` that are not older than what the store holds for their
        ids (another replies partition may hold a later decision of the same id)."""
        keys = list(batch)
        held = {k: v for k, v in zip(keys, self.lookup(keys), strict=True) if v is not None}
        return latest_entries(held, batch) if held else batch

    def lacks(
        self, settings: Settings, marks: Mapping[int, tuple[bytes, int]], now_ms: int
    ) -> list[int]:
        """The replies partitions whose checkpoint mark (``marks``: key and time per replies
        partition) this memory lacks, ignoring marks past the window: empty when a store
        that followed the changelog may serve as it is."""
        return self._behind(marks, now_ms - replies_retention_ms(settings.idempotency_window_ms))

    def _behind(self, marks: Mapping[int, tuple[bytes, int]], since_ms: int) -> list[int]:
        """The replies partitions whose marked id key the memory lacks (marks older than
        `since_ms` are past the window and may be gone)."""
        return sorted(p for p, (key, at) in marks.items() if at >= since_ms and key not in self)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._db.get(key) is not None


def _entry(msg: Any) -> tuple[bytes, bytes] | None:
    """The id memory entry a replies record holds (None: it remembers nothing)."""
    key, value = msg.key(), msg.value()
    if not key or value is None or key[:1] == UNREMEMBERED_KEY_PREFIX:
        return None
    return key, value


def open_id_store(settings: Settings, partition: int, member: int = 0) -> IdStore:
    """Member ``member``'s store of the partition (``Names.ids_dir``). When another live
    process holds it (an old actor of the partition on this node that is not dead yet), a
    private scratch store is used instead and restored from the changelog in full."""
    path = Names.of(settings).ids_dir(settings, partition, member)
    base = path.parent
    ttl = replies_retention_ms(settings.idempotency_window_ms) // 1000
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return IdStore(path, ttl)
    except Exception as e:  # rocksdict raises a bare Exception for a held lock
        if "lock" not in str(e).lower():
            raise
        scratch = base / f"{path.name}.scratch-{os.getpid()}"
        log.warning("id store %s is unavailable (%s); using %s", path, e, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        return IdStore(scratch, ttl, scratch=True)


def _aggregate_span(key: bytes) -> tuple[int, int] | None:
    """Where in id key `key` its aggregate key (`encode_key`) lies, read off its msgpack
    head (a 2- or 3-element array whose first element is the aggregate id's string): (start,
    end); None for a key of another kind. Every id key of that aggregate and shape starts
    with `key[:end]`, and no other key does (the string's head carries its length)."""
    if len(key) < 2 or key[0] not in (0x92, 0x93):
        return None
    head = key[1]
    if 0xA0 <= head <= 0xBF:
        start, length = 2, head & 0x1F
    elif head in _STR_HEADS and len(key) >= 2 + _STR_HEADS[head]:
        start = 2 + _STR_HEADS[head]
        length = int.from_bytes(key[2:start], "big")
    else:
        return None
    return (start, start + length) if len(key) >= start + length else None


def _past(prefix: bytes) -> bytes:
    """The least key above every key that starts with `prefix` (a byte of it is below 0xff)."""
    head = prefix.rstrip(b"\xff")
    return head[:-1] + bytes([head[-1] + 1])


_STR_HEADS: Final = {0xD9: 1, 0xDA: 2, 0xDB: 4}  # msgpack str8/16/32: bytes of the length


def _open(path: Path, ttl_seconds: int) -> Rdict:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(_WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(Cache(_BLOCK_CACHE_BYTES))
    options.set_block_based_table_factory(table)
    # column_families={}: without it rocksdict reloads the options saved in the directory,
    # whose TTL filter (once a TTL store was opened in this process) the TTL open then wraps
    # again; nested filters read reply bytes as expiry times and compaction drops the ids.
    return Rdict(
        str(path), options, column_families={}, access_type=AccessType.with_ttl(ttl_seconds)
    )


def _offset_at(consumer: Consumer, partition: TopicPartition, since_ms: int, high: int) -> int:
    """The first offset of `partition` with a timestamp >= `since_ms` (`high` if none)."""
    [found] = consumer.offsets_for_times(
        [TopicPartition(partition.topic, partition.partition, max(since_ms, 0))], timeout=30
    )
    return high if found.offset < 0 else int(found.offset)


def _where(
    settings: Settings, topic: str, keys: Mapping[int, bytes], positions: Mapping[int, int]
) -> str:
    """For the error of a restore that misses marked replies: per replies partition, the
    stored position, the last stable offset, the high watermark and the offsets at which a
    read_uncommitted scan finds the marked key (committed or not)."""
    found: list[str] = []
    group = Names.of(settings).group("ids-diagnosis", unique=True)
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = Consumer(
            consumer_config(settings, group_id=group, **{**_RESTORE_CONSUMER,
                                                         "isolation.level": isolation})
        )  # fmt: skip
        try:
            for p, key in keys.items():
                tp = TopicPartition(topic, p)
                low, high = watermarks(consumer, tp)
                at = [m.offset() for m in scan_partition(consumer, tp) if m.key() == key]
                found.append(
                    f"[{p}] {isolation}: position {positions.get(p)}, offsets {low}..{high}, "
                    f"marked key at {at}"
                )
        except Exception as e:  # a diagnosis must never fail the restore
            found.append(f"{isolation}: diagnosis failed: {e}")
        finally:
            consumer.close()
    return "; ".join(found)
