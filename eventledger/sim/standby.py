"""A standby of one partition in the simulator: the actor's restore, tail and promotion
(`actors.standby`, `actors.opening.promote_partition`), with the real pure code
(`topology.follow.Batches`, `Committed.followed`, the id memory's fold) and the in-memory
logs in place of Kafka.

Invariants (the actor's): it never writes, so it never fences its writer; it reads only what
is committed (`read_committed`), at its own pace, and a fetch may end anywhere inside a
batch, but it applies whole batches only, at their checkpoints, so its state is always the
writer's at some commit sequence (`seq`). A promotion fences first (a new producer epoch:
the old writer's open transaction is aborted, and its later writes are refused), then reads
the snapshots and the replies to their end, which the fence made final, and only then hands
its state and id memory to a writer positioned at the last checkpoint.
"""

from __future__ import annotations

from actors.committed import Committed
from eventledger.sim.logs import Logs, Record
from eventledger.sim.partition import Handover
from eventledger.sim.readback import read_back, remember
from topology.codec.aggregate import Codec
from topology.follow import Batches
from topology.topics import TopicKind

__all__ = ["SimStandby"]


class SimStandby:
    """The standby of partition `partition`: restored from the logs when made (a new one
    after every takeover), then following by `follow`."""

    def __init__(self, codec: Codec, logs: Logs, *, partition: int, reply_lanes: int) -> None:
        self.logs = logs
        self.partition = partition
        self.reply_lanes = reply_lanes
        back = read_back(codec, logs, partition, reply_lanes)
        self.committed = Committed(codec, 0, {}, back.states)
        self.committed.restored(back.states, 0, back.checkpoint, back.slot_record)
        self.committed.positioned(back.checkpoint.next_offset, back.checkpoint.internal_offset)
        self.ids = back.ids
        self.snapshots_at = back.snapshots_at  # the tail's next offset in snapshots[p]
        self.replies_at = dict(back.replies_at)  # reply lane → the tail's next offset
        self.batches = Batches()

    @property
    def seq(self) -> int:
        return self.committed.seq

    def follow(self, records: int | None) -> int:
        """One fetch: up to `records` committed records (None: all there are) of
        `snapshots[p]` and of each replies lane, applied as the actor's tail applies them
        (whole batches only); how many snapshots records were read."""
        read = 0
        log = self.logs.log(TopicKind.SNAPSHOTS, self.partition)
        for record in log.read(self.snapshots_at):
            if records is not None and read >= records:
                break
            read += 1
            self.snapshots_at = record.offset + 1
            batch = self.batches.feed(record.key, record.value)
            if batch is not None:
                self.committed.followed(batch.records, batch.checkpoint, batch.slot_record)
        for lane in range(self.reply_lanes):
            replies = self.logs.log(TopicKind.REPLIES, self.partition * self.reply_lanes + lane)
            fetched: list[Record] = []
            for record in replies.read(self.replies_at[lane]):
                if records is not None and len(fetched) >= records:
                    break
                fetched.append(record)
            if fetched:
                remember(self.ids, fetched)
                self.replies_at[lane] = fetched[-1].offset + 1
        return read

    def caught_up(self) -> bool:
        """Whether it has applied everything committed (no batch half read)."""
        if self.batches.pending:
            return False
        if next(self.logs.log(TopicKind.SNAPSHOTS, self.partition).read(self.snapshots_at), None):
            return False
        return all(
            next(
                self.logs.log(TopicKind.REPLIES, self.partition * self.reply_lanes + lane).read(
                    self.replies_at[lane]
                ),
                None,
            )
            is None
            for lane in range(self.reply_lanes)
        )

    def promote(self) -> Handover:
        """The takeover: fence, read the snapshots and the replies to their end (final once
        fenced), then hand over the state at the last checkpoint and the id memory."""
        epoch = self.logs.init(self.partition)
        self.catch_up()
        c = self.committed
        return Handover(epoch, c.states, c.deadlines, c.position(), self.ids, c.slot_record)

    def catch_up(self) -> None:
        """Apply what is left of the snapshots and the replies (`drain`, the id memory's
        catch-up)."""
        self.follow(None)
