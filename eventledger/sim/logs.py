"""In-memory Kafka logs with the semantics the ledger relies on, for the simulator.

Invariants (Kafka's, as a ``read_committed`` reader sees them):
- a transaction's records become visible together at its commit, or never (abort);
- offsets only grow, and an aborted or open transaction still takes its offsets (a reader
  skips them, so offsets a reader sees have gaps, as on a real broker);
- every commit or abort takes one more offset (the control marker), per partition written;
- a commit (or abort) returns before its markers are written: on each partition it wrote,
  its marker lands a seeded number of scheduler steps later (`Logs.tick`; 0: at once), each
  partition on its own. Until it lands there, the partition's last stable offset (LSO: the
  end a `read_committed` reader is told, and reads to) stays at the transaction's first
  offset there, so that reader sees neither its records nor any record after them. The
  transaction is decided (`decided` reads it: the checker's view, no reader's);
- the coordinator completes a transaction before it lets its transactional id go on: a new
  `init` of the id, or the id's next transaction at its first write, lands every marker
  the id still owes first;
- transactional-id fencing: each transactional id (a partition's writer, a rebuild's
  shadow) has a producer epoch; `init` bumps it and aborts the open transaction of an older
  epoch (its markers land before `init` returns), and a write or commit from an older epoch
  is refused (`FencedError`) and makes nothing visible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from topology.step.records import OutRecord
from topology.topics import TopicKind

__all__ = ["FencedError", "Log", "Logs", "Record", "Transaction", "TxnId"]

TxnId = int | str
"""A transactional id: a partition's writer is its partition number; a shadow rebuild of
partition p is `rebuild-{p}`."""


@dataclass(frozen=True, slots=True)
class Record:
    """A record as stored: its offset, key, value and headers; `visible` once committed."""

    offset: int
    key: bytes | None
    value: bytes | None
    visible: bool
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Log:
    """One topic partition."""

    records: list[Record] = field(default_factory=list, repr=False)
    end: int = 0  # the next offset (records and control markers counted)
    # transaction number → its first offset here, until its marker lands here
    unstable: dict[int, int] = field(default_factory=dict)
    # transaction number → its first offset here, until it commits or aborts
    undecided: dict[int, int] = field(default_factory=dict)

    def append(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        visible: bool,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> int:
        offset = self.end
        self.records.append(Record(offset, key, value, visible, headers))
        self.end += 1
        return offset

    def marker(self, number: int) -> None:
        """Transaction `number`'s control marker lands: it takes an offset, and the
        transaction no longer holds the last stable offset back."""
        self.unstable.pop(number, None)
        self.end += 1

    def stable_end(self) -> int:
        """The last stable offset: what a `read_committed` reader is told is the end."""
        return min(self.unstable.values(), default=self.end)

    def read(self, position: int) -> Iterator[Record]:
        """What a `read_committed` reader gets from offset `position` on, in order: the
        committed records below the last stable offset."""
        stable = self.stable_end()
        for record in self.records[_first_at(self.records, position) :]:
            if record.offset >= stable:
                return
            if record.visible:
                yield record

    def decided_end(self) -> int:
        """Where `decided` stops for good: no transaction open below it."""
        return min(self.undecided.values(), default=self.end)

    def decided(self, position: int) -> Iterator[Record]:
        """Every record of a committed transaction from offset `position` on, its marker
        landed or not: the checker's view of what is committed (no reader's)."""
        for record in self.records[_first_at(self.records, position) :]:
            if record.visible:
                yield record


def _first_at(records: list[Record], offset: int) -> int:
    """The index of the first record at or after `offset` (records are in offset order)."""
    lo, hi = 0, len(records)
    while lo < hi:
        mid = (lo + hi) // 2
        if records[mid].offset < offset:
            lo = mid + 1
        else:
            hi = mid
    return lo


class FencedError(Exception):
    """A write or commit by a producer whose epoch a newer `init` of its transactional id
    has superseded (Kafka's ProducerFencedException)."""


@dataclass(frozen=True)
class _Marker:
    """A marker owed: transaction `number` of `txn_id` on `log`, due at scheduler step `due`."""

    due: int
    number: int
    txn_id: TxnId
    log: Log


class Logs:
    """Every topic partition of one app: (kind, partition, generation) → Log, made on first
    use (generation 0 but for a rebuild's snapshots); the producer epoch of every
    transactional id; and the markers owed, each landing up to `marker_lag` scheduler steps
    after its commit (drawn from `seed`: half at once, the others 1 to `marker_lag`)."""

    def __init__(self, *, marker_lag: int = 0, seed: int = 0) -> None:
        self._logs: dict[tuple[TopicKind, int, int], Log] = {}
        self._epochs: dict[TxnId, int] = {}  # transactional id → its current producer epoch
        self._open: dict[TxnId, Transaction] = {}  # transactional id → its open transaction
        self.marker_lag = marker_lag
        self._lags = random.Random(f"markers-{seed}")
        self.steps = 0  # scheduler steps so far
        self.owed: list[_Marker] = []  # in the order they were owed
        self._transactions = 0

    def log(self, kind: TopicKind, partition: int, generation: int = 0) -> Log:
        found = self._logs.get((kind, partition, generation))
        if found is None:
            found = self._logs[kind, partition, generation] = Log()
        return found

    def number(self) -> int:
        """A new transaction's number (what a log's unstable offsets are keyed by)."""
        self._transactions += 1
        return self._transactions

    def tick(self) -> None:
        """One scheduler step: the markers due by now land."""
        self.steps += 1
        if any(m.due <= self.steps for m in self.owed):
            self._land(lambda m: m.due <= self.steps)

    def complete(self, txn_id: TxnId) -> None:
        """The coordinator completes `txn_id`'s ended transactions: their markers land."""
        if any(m.txn_id == txn_id for m in self.owed):
            self._land(lambda m: m.txn_id == txn_id)

    def _land(self, due: Callable[[_Marker], bool]) -> None:
        kept = []
        for m in self.owed:
            if due(m):
                m.log.marker(m.number)
            else:
                kept.append(m)
        self.owed = kept

    def owe(self, number: int, txn_id: TxnId, log: Log) -> None:
        """Transaction `number` ended on `log`: its marker lands now or some steps later."""
        lag = 0
        if self.marker_lag and self._lags.random() < 0.5:
            lag = self._lags.randint(1, self.marker_lag)
        if lag == 0:
            log.marker(number)
        else:
            self.owed.append(_Marker(self.steps + lag, number, txn_id, log))

    def produce_committed(
        self,
        kind: TopicKind,
        partition: int,
        key: bytes,
        value: bytes,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> int:
        """A record outside any transaction (a client's command: idempotent producer)."""
        return self.log(kind, partition).append(key, value, visible=True, headers=headers)

    def init(self, txn_id: TxnId) -> int:
        """A producer's `init_transactions` for `txn_id`: the next epoch, which fences every
        older one; the open transaction of an older epoch is aborted, and every marker the
        id owes lands before it returns."""
        epoch = self._epochs.get(txn_id, -1) + 1
        self._epochs[txn_id] = epoch
        open_txn = self._open.get(txn_id)
        if open_txn is not None and self.fenced(txn_id, open_txn.epoch):
            open_txn.abort()
        self.complete(txn_id)
        return epoch

    def fenced(self, txn_id: TxnId, epoch: int) -> bool:
        """Whether a newer `init` of `txn_id` has superseded `epoch`."""
        return epoch < self._epochs.get(txn_id, 0)

    def transaction(self, txn_id: TxnId, epoch: int) -> Transaction:
        """A new transaction of producer (`txn_id`, `epoch`) (Kafka's `begin_transaction`:
        local, so a fenced producer learns of it at its first write)."""
        txn = Transaction(self, txn_id, epoch)
        if not self.fenced(txn_id, epoch):
            self._open[txn_id] = txn
        return txn

    def ended(self, txn: Transaction) -> None:
        if self._open.get(txn.txn_id) is txn:
            del self._open[txn.txn_id]


class Transaction:
    """Records produced in one transaction of producer (`txn_id`, `epoch`). They take their
    offsets when produced (hidden), and `commit` decides them (visible to a
    `read_committed` reader of a partition once its marker lands there); `abort` leaves them
    hidden for good. A fenced producer's `put` or `commit` raises `FencedError`."""

    def __init__(self, logs: Logs, txn_id: TxnId, epoch: int) -> None:
        self._logs = logs
        self.txn_id = txn_id
        self.epoch = epoch
        self.number = logs.number()
        self._written: dict[tuple[TopicKind, int, int], list[int]] = {}
        self.open = True

    def produce(self, record: OutRecord) -> int:
        headers = tuple(record.headers)
        return self.put(record.kind, record.partition, record.key, record.value, headers=headers)

    def put(
        self,
        kind: TopicKind,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        generation: int = 0,
        *,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> int:
        if not self.open:
            raise RuntimeError("the transaction has ended")
        self._check_fence()
        if not self._written:  # the coordinator adds no partition while the id owes markers
            self._logs.complete(self.txn_id)
        log = self._logs.log(kind, partition, generation)
        offset = log.append(key, value, visible=False, headers=headers)
        written = self._written.setdefault((kind, partition, generation), [])
        if not written:
            log.unstable[self.number] = offset
            log.undecided[self.number] = offset
        written.append(offset)
        return offset

    def _check_fence(self) -> None:
        if self._logs.fenced(self.txn_id, self.epoch):
            raise FencedError(f"producer {self.txn_id} epoch {self.epoch} is fenced")

    def _end(self, commit: bool) -> None:
        if commit:
            self._check_fence()  # first: the fence may have aborted it already
        if not self.open:
            raise RuntimeError("the transaction has ended")
        self.open = False
        self._logs.ended(self)
        for (kind, partition, generation), offsets in self._written.items():
            log = self._logs.log(kind, partition, generation)
            del log.undecided[self.number]
            if commit:
                for offset in offsets:
                    i = _first_at(log.records, offset)
                    r = log.records[i]
                    log.records[i] = Record(r.offset, r.key, r.value, True, r.headers)
            self._logs.owe(self.number, self.txn_id, log)

    def commit(self) -> None:
        self._end(True)

    def abort(self) -> None:
        self._end(False)
