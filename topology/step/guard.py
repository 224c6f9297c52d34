"""The size guard: a batch never writes a snapshot or view record larger than the limit
(`topology.limits.MAX_SNAPSHOT_BYTES`), which Kafka would refuse, aborting the transaction
again and again until the partition set the record aside or blocked.

The design, chosen for the hot path: a batch runs as it always did, and the records of each
changed aggregate are encoded once, at its end, by `SizeGuard.records`, which notes any over
the limit (a length check: free). Only then does the batch run again from the same inputs
(the step is pure) with the guard on for the aggregates found over: each of their commands
is folded, encoded and checked (`SizeGuard.refusal`) before its events are written, and one
that would pass the limit is refused (`FlowCode.STATE_TOO_LARGE`; a leg is set aside
instead, so the money it carries stays in flight where an operator sees it). A refusal can
change what later commands do to other aggregates, so the batch runs again while a record
is over, each run guarding at least one more aggregate: at most one run more than the
aggregates the batch changes. A batch pays the encoding per command only when it would
have written an oversized record.

Invariant: every record `records` returns for a guarded aggregate is within the limit (its
slot passed `refusal` when it was written), so a run that guards every aggregate it found
over writes none.
"""

from topology.envelopes import Slot
from topology.limits import clip
from topology.step.context import StepContext
from topology.step.records import OutRecord
from topology.topics import TopicKind

__all__ = ["SizeGuard"]


class SizeGuard:
    """Builds the snapshot and view records of a batch's changed aggregates (stamped with
    `events_offset`) and checks them against `limit` bytes; on for the `guarded`
    aggregates. `over` collects the aggregates whose records were over the limit."""

    def __init__(
        self, context: StepContext, events_offset: int, limit: int, guarded: frozenset[str]
    ) -> None:
        self._context = context
        self._events_offset = events_offset
        self.limit = limit
        self.guarded = guarded
        self.over: set[str] = set()

    def records(self, aggregate_id: str, slot: Slot) -> tuple[OutRecord, OutRecord | None]:
        """The snapshot record of `slot` and its view record (None: the aggregate does not
        exist); `aggregate_id` is noted in `over` when either is over the limit."""
        key, snapshot, view = self._encoded(aggregate_id, slot)
        if len(snapshot) > self.limit or (view is not None and len(view) > self.limit):
            self.over.add(aggregate_id)
        partition = self._context.partition
        return (
            OutRecord(TopicKind.SNAPSHOTS, partition, key, snapshot, [], None),
            None if view is None else OutRecord(TopicKind.STATE, partition, key, view, [], None),
        )

    def snapshot(self, aggregate_id: str, slot: Slot) -> bytes:
        """The snapshot record value of `slot` (a handoff carries it to the target)."""
        codec = self._context.codec
        return codec.snapshots.record(aggregate_id, slot, self._events_offset)[1]

    def refusal(self, aggregate_id: str, slot: Slot) -> str | None:
        """Why `slot` may not become `aggregate_id`'s slot when the guard is on for it: the
        record that would be over the limit (None: it may)."""
        if aggregate_id not in self.guarded:
            return None
        _, snapshot, view = self._encoded(aggregate_id, slot)
        for what, value in (("snapshot", snapshot), ("view", view)):
            if value is not None and len(value) > self.limit:
                return clip(
                    f"its events would make the {what} of {aggregate_id!r} {len(value):,} "
                    f"bytes, over the limit of {self.limit:,}"
                )
        return None

    def _encoded(self, aggregate_id: str, slot: Slot) -> tuple[bytes, bytes, bytes | None]:
        """The key, snapshot value and view value (None: no aggregate) of `slot`."""
        codec = self._context.codec
        key, snapshot = codec.snapshots.record(aggregate_id, slot, self._events_offset)
        view = None if slot.state is None else codec.views.encode(slot.state, slot.version)
        return key, snapshot, view
