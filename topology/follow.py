"""A standby's tail of ``snapshots[p]``, the pure part: where one committed batch ends.

The writer writes each batch's snapshots and then, last in ``snapshots[p]``, the batch's
checkpoint, in one transaction (``actors.commit.BatchCommit.transact``). A ``read_committed``
reader gets a transaction's records in offset order and only once committed, but a fetch may
end anywhere inside it. So the tail buffers snapshot records until a checkpoint arrives and
only then hands out the batch, whole: a standby that applies what ``Batches.feed`` returns
never holds half a batch, and its state at a checkpoint is the writer's at that checkpoint's
``seq``. A checkpoint with no snapshots before it (a tick that changed nothing, a seal)
is a batch of no records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.codec.keys import TOUCH_KEY
from topology.envelopes import Checkpoint
from topology.moves import SLOT_RECORD_KEY, SlotRecord, decode_slot_record

__all__ = ["Batch", "Batches"]

Record = tuple[bytes, bytes | None]
"""A snapshot record's key and value (None: a tombstone)."""


@dataclass(frozen=True)
class Batch:
    """One committed batch's snapshot records, in order, its checkpoint, and its slot
    record (None: the batch made no move)."""

    records: list[Record]
    checkpoint: Checkpoint
    slot_record: SlotRecord | None = None


@dataclass
class Batches:
    """Snapshot records in, whole batches out. ``pending`` holds the records of the batch
    whose checkpoint has not arrived yet (at most one batch's)."""

    pending: list[Record] = field(default_factory=list)
    slot_record: SlotRecord | None = None

    def feed(self, key: bytes | None, value: bytes | None) -> Batch | None:
        """One record of ``snapshots[p]``, in offset order: the batch it completes (a
        checkpoint), else None. A touch record (``TOUCH_KEY``) is no snapshot and is
        skipped; a slot record (`SLOT_RECORD_KEY`) goes with its batch. Raises CodecError for
        a checkpoint or slot record that does not decode."""
        if key == CHECKPOINT_KEY:
            batch = Batch(self.pending, decode_checkpoint(value), self.slot_record)
            self.pending, self.slot_record = [], None
            return batch
        if key is None or key == TOUCH_KEY:
            return None
        if key == SLOT_RECORD_KEY:
            self.slot_record = decode_slot_record(value or b"")
            return None
        self.pending.append((key, value))
        return None
