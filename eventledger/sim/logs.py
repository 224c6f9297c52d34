"""In-memory Kafka logs with the semantics the ledger relies on, for the simulator.

Invariants (Kafka's, as a ``read_committed`` reader sees them):
- a transaction's records become visible together at its commit, or never (abort);
- offsets only grow, and an aborted or open transaction still takes its offsets (a reader
  skips them, so offsets a reader sees have gaps, as on a real broker);
- every commit or abort takes one more offset (the control marker), per partition written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from topology.step.records import OutRecord
from topology.topics import TopicKind

__all__ = ["Log", "Logs", "Record", "Transaction"]


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


class Logs:
    """Every topic partition of one app: (kind, partition) → Log, made on first use."""

    def __init__(self) -> None:
        self._logs: dict[tuple[TopicKind, int], Log] = {}

    def log(self, kind: TopicKind, partition: int) -> Log:
        found = self._logs.get((kind, partition))
        if found is None:
            found = self._logs[kind, partition] = Log()
        return found

    def produce_committed(self, kind: TopicKind, partition: int, key: bytes, value: bytes) -> int:
        """A record outside any transaction (a client's command: idempotent producer)."""
        return self.log(kind, partition).append(key, value, visible=True)

    def transaction(self) -> Transaction:
        return Transaction(self)


class Transaction:
    """Records produced in one transaction. They take their offsets when produced (hidden),
    and `commit` makes them visible at once; `abort` leaves them hidden for good."""

    def __init__(self, logs: Logs) -> None:
        self._logs = logs
        self._written: dict[tuple[TopicKind, int], list[int]] = {}
        self.open = True

    def produce(self, record: OutRecord) -> int:
        return self.put(record.kind, record.partition, record.key, record.value)

    def put(self, kind: TopicKind, partition: int, key: bytes | None, value: bytes | None) -> int:
        if not self.open:
            raise RuntimeError("the transaction has ended")
        offset = self._logs.log(kind, partition).append(key, value, visible=False)
        self._written.setdefault((kind, partition), []).append(offset)
        return offset

    def _end(self, commit: bool) -> None:
        if not self.open:
            raise RuntimeError("the transaction has ended")
        self.open = False
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
