"""In-memory Kafka logs with the semantics the ledger relies on, for the simulator.

Invariants (Kafka's, as a ``read_committed`` reader sees them):
- a transaction's records become visible together at its commit, or never (abort);
- offsets only grow, and an aborted or open transaction still takes its offsets (a reader
  skips them, so offsets a reader sees have gaps, as on a real broker);
- every commit or abort takes one more offset (the control marker), per partition written;
- transactional-id fencing: each transactional id (a partition's writer) has a producer
  epoch; `init` bumps it and aborts the open transaction of an older epoch, and a write or
  commit from an older epoch is refused (`FencedError`) and makes nothing visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from topology.step.records import OutRecord
from topology.topics import TopicKind

__all__ = ["FencedError", "Log", "Logs", "Record", "Transaction"]


@dataclass(frozen=True, slots=True)
class Record:
    """A record as stored: its offset, key and value; `visible` once committed."""

    offset: int
    key: bytes | None
    value: bytes | None
    visible: bool


@dataclass
class Log:
    """One topic partition."""

    records: list[Record] = field(default_factory=list)
    end: int = 0  # the next offset (records and control markers counted)

    def append(self, key: bytes | None, value: bytes | None, *, visible: bool) -> int:
        offset = self.end
        self.records.append(Record(offset, key, value, visible))
        self.end += 1
        return offset

    def marker(self) -> None:
        """A transaction's control marker takes an offset."""
        self.end += 1

    def read(self, position: int) -> Iterator[Record]:
        """The committed records from offset `position` on, in order."""
        start = _first_at(self.records, position)
        for record in self.records[start:]:
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


class Logs:
    """Every topic partition of one app: (kind, partition) → Log, made on first use; and the
    producer epoch of every transactional id (a partition's writer: its partition number)."""

    def __init__(self) -> None:
        self._logs: dict[tuple[TopicKind, int], Log] = {}
        self._epochs: dict[int, int] = {}  # transactional id → its current producer epoch
        self._open: dict[int, Transaction] = {}  # transactional id → its open transaction

    def log(self, kind: TopicKind, partition: int) -> Log:
        found = self._logs.get((kind, partition))
        if found is None:
            found = self._logs[kind, partition] = Log()
        return found

    def produce_committed(self, kind: TopicKind, partition: int, key: bytes, value: bytes) -> int:
        """A record outside any transaction (a client's command: idempotent producer)."""
        return self.log(kind, partition).append(key, value, visible=True)

    def init(self, txn_id: int) -> int:
        """A producer's `init_transactions` for `txn_id`: the next epoch, which fences every
        older one; the open transaction of an older epoch is aborted."""
        epoch = self._epochs.get(txn_id, -1) + 1
        self._epochs[txn_id] = epoch
        open_txn = self._open.get(txn_id)
        if open_txn is not None and self.fenced(txn_id, open_txn.epoch):
            open_txn.abort()
        return epoch

    def fenced(self, txn_id: int, epoch: int) -> bool:
        """Whether a newer `init` of `txn_id` has superseded `epoch`."""
        return epoch < self._epochs.get(txn_id, 0)

    def transaction(self, txn_id: int, epoch: int) -> Transaction:
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
    offsets when produced (hidden), and `commit` makes them visible at once; `abort` leaves
    them hidden for good. A fenced producer's `put` or `commit` raises `FencedError`."""

    def __init__(self, logs: Logs, txn_id: int, epoch: int) -> None:
        self._logs = logs
        self.txn_id = txn_id
        self.epoch = epoch
        self._written: dict[tuple[TopicKind, int], list[int]] = {}
        self.open = True

    def produce(self, record: OutRecord) -> int:
        return self.put(record.kind, record.partition, record.key, record.value)

    def put(self, kind: TopicKind, partition: int, key: bytes | None, value: bytes | None) -> int:
        if not self.open:
            raise RuntimeError("the transaction has ended")
        self._check_fence()
        offset = self._logs.log(kind, partition).append(key, value, visible=False)
        self._written.setdefault((kind, partition), []).append(offset)
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
        for (kind, partition), offsets in self._written.items():
            log = self._logs.log(kind, partition)
            if commit:
                for offset in offsets:
                    i = _first_at(log.records, offset)
                    r = log.records[i]
                    log.records[i] = Record(r.offset, r.key, r.value, True)
            log.marker()

    def commit(self) -> None:
        self._end(True)

    def abort(self) -> None:
        self._end(False)
