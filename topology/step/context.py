"""Where and when one batch runs: the facts every part of the batch step reads, never writes."""

from dataclasses import dataclass

from topology.codec.aggregate import Codec
from topology.codec.keys import encode_key
from topology.envelopes import Position
from topology.moves import SlotRecord
from topology.routing import Router

__all__ = ["StepContext"]


@dataclass(frozen=True, slots=True)
class StepContext:
    """A batch of `partition` read from `source_topic`, run at `now_ms` (the partition's clock),
    with an idempotency window of `window_ms` and `reply_lanes` reply lanes per partition.
    `router` routes by the partition's effective table (the published routing table merged
    with its slot record's: where its legs and forwards go). `slots` is the partition's slot
    record (None: the application has no slots, and a partition owns what `router` gives
    it). A reply lane `l` of this partition is replies partition
    `partition * reply_lanes + l` (see `TopicLayout.reply_partition`). `seq` is the
    partition's commit sequence once this batch commits (`Checkpoint.seq`): every reply the
    batch makes carries it as its `position`.

    Invariant: a partition decides a record only if it `owns` its aggregate; `route` never
    names this partition for an aggregate it does not own while the tables obey the
    design's publication rule (a published owner has installed the slot)."""

    codec: Codec
    partition: int
    router: Router
    reply_lanes: int
    source_topic: str
    window_ms: int
    now_ms: int
    seq: int
    slots: SlotRecord | None = None

    @property
    def position(self) -> Position:
        """Where this batch's commit puts the partition."""
        return Position(self.partition, self.seq)

    def owner(self, aggregate_id: str) -> int:
        """The partition that owns `aggregate_id`, by the effective table."""
        return self.router.partition_of(encode_key(aggregate_id))

    def route(self, key: bytes) -> int:
        """The partition a record keyed `key` goes to, by the effective table."""
        return self.router.partition_of(key)

    def owns(self, aggregate_id: str) -> bool:
        """Whether this partition decides `aggregate_id`'s records: its slot record owns the
        aggregate's slot (with no slot record: the router names this partition)."""
        key = encode_key(aggregate_id)
        if self.slots is None:
            return self.router.partition_of(key) == self.partition
        return self.slots.owns(self.slots.table.slot_of(key))

    def replies_partition(self, reply_to: int | None) -> int | None:
        """The replies partition of this partition's reply lane `reply_to` (None: no lane, or
        not one of the lanes)."""
        if reply_to is None or reply_to >= self.reply_lanes:
            return None
        return self.partition * self.reply_lanes + reply_to
