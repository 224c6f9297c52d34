"""The simulator's check of positions: each partition's commit sequence (`Checkpoint.seq`).

Per partition, every committed checkpoint's `seq` is the previous one's + 1 (a batch) or
equal to it (a checkpoint that commits no batch: a rebuild's seal), so positions only grow,
across crashes and restores too; a running worker stands at its last committed checkpoint's
`seq`; and no reply names a position its partition has not committed (rule `positions`).

A standby never stands past its partition's last committed `seq`, and one that has read
everything committed holds its writer's state, offsets, clock, marks, flows, lost legs and
`seq` (rule `standby`).
"""

from __future__ import annotations

from collections.abc import Iterable

from eventledger.sim.world import World
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.envelopes import Reply
from topology.topics import TopicKind

__all__ = ["PositionCheck"]


class PositionCheck:
    """Reads each partition's committed checkpoints as they come and checks their `seq`."""

    def __init__(self) -> None:
        self.read: dict[int, int] = {}  # partition → next snapshots offset to read
        self.seqs: dict[int, int] = {}  # partition → its last committed checkpoint's seq

    def step(self, world: World, replies: Iterable[Reply]) -> tuple[str, str] | None:
        """The rule that broke since the last step and how (None: nothing); `replies` are
        those received."""
        broke = self._positions(world, replies)
        if broke is not None:
            return "positions", broke
        broke = self._standbys(world)
        return None if broke is None else ("standby", broke)

    def _standbys(self, world: World) -> str | None:
        for p, standby in sorted(world.standbys.items()):
            committed = self.seqs.get(p, 0)
            if standby.seq > committed:
                return f"p{p}: a standby stands at seq {standby.seq}, its checkpoint {committed}"
            if not standby.caught_up():
                continue
            worker, c = world.partitions[p], standby.committed
            held = (c.next_offset, c.internal_offset, c.clock_ms, c.marks, c.flows, c.lost, c.seq)
            writer = (
                worker.next_offset,
                worker.internal_offset,
                worker.clock_ms,
                worker.marks,
                worker.flows,
                worker.lost,
                worker.seq,
            )
            if held != writer:
                return f"p{p}: the standby read to the end holds {held}, its writer {writer}"
            if dict(c.states.items()) != dict(worker.states.items()):
                return f"p{p}: the standby read to the end holds another state than its writer"
        return None

    def _positions(self, world: World, replies: Iterable[Reply]) -> str | None:
        for p in range(world.config.partitions):
            log = world.logs.log(TopicKind.SNAPSHOTS, p)
            for record in log.read(self.read.get(p, 0)):
                if record.key != CHECKPOINT_KEY:
                    continue
                seq, before = decode_checkpoint(record.value).seq, self.seqs.get(p, 0)
                if seq not in (before, before + 1):
                    return (
                        f"p{p}: a checkpoint at offset {record.offset} has seq {seq} after {before}"
                    )
                self.seqs[p] = seq
            self.read[p] = log.end
        for p in range(world.config.partitions):
            worker, committed = world.partitions[p], self.seqs.get(p, 0)
            if p not in world.stopped and worker.seq != committed:
                return f"p{p}: the worker stands at seq {worker.seq}, its checkpoint at {committed}"
        for reply in replies:
            at = reply.position
            if at is None:
                return f"a reply without a position: {reply}"
            if at.seq > self.seqs.get(at.partition, 0) or at.seq < 1:
                return f"a reply names position {at}, not committed: {reply}"
        return None
