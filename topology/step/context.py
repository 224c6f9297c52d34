"""Where and when one batch runs: the facts every part of the batch step reads, never writes."""

from dataclasses import dataclass

from topology.codec.aggregate import Codec
from topology.codec.keys import encode_key
from topology.envelopes import Position
from topology.routing import Router

__all__ = ["StepContext"]


@dataclass(frozen=True, slots=True)
class StepContext:
    """A batch of `partition` read from `source_topic`, run at `now_ms` (the partition's clock),
    with an idempotency window of `window_ms` and `reply_lanes` reply lanes per partition.
    `router` says which partition owns an aggregate (where its legs go). A reply lane `l`
    of this partition is replies partition `partition * reply_lanes + l` (see
    `TopicLayout.reply_partition`). `seq` is the partition's commit sequence once this batch
    commits (`Checkpoint.seq`): every reply the batch makes carries it as its `position`."""

    codec: Codec
    partition: int
    router: Router
    reply_lanes: int
    source_topic: str
    window_ms: int
    now_ms: int
    seq: int

    @property
    def position(self) -> Position:
        """Where this batch's commit puts the partition."""
        return Position(self.partition, self.seq)

    def owner(self, aggregate_id: str) -> int:
        """The partition that owns `aggregate_id`."""
        return self.router.partition_of(encode_key(aggregate_id))

    def replies_partition(self, reply_to: int | None) -> int | None:
        """The replies partition of this partition's reply lane `reply_to` (None: no lane, or
        not one of the lanes)."""
        if reply_to is None or reply_to >= self.reply_lanes:
            return None
        return self.partition * self.reply_lanes + reply_to
