"""The simulator's check of positions: each partition's commit sequence (`Checkpoint.seq`).

Per partition, every committed checkpoint's `seq` is the previous one's + 1 (a batch) or
equal to it (a checkpoint that commits no batch: a rebuild's seal), so positions only grow,
across crashes and restores too; a running worker stands at its last committed checkpoint's
`seq`; and no reply names a position its partition has not committed (rule `positions`).

A standby, however far behind, holds exactly what its writer held at the standby's `seq`
(state, offsets, clock, marks, flows, lost legs), and one that has read everything it can
read stands at the `seq` of the last checkpoint below the last stable offset (rule
`standby`).
"""

from __future__ import annotations

from collections.abc import Iterable

from eventledger.sim.standby import SimStandby
from eventledger.sim.world import World
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint, encode_checkpoint
from topology.envelopes import Checkpoint, Reply, Slot
from topology.topics import TopicKind

__all__ = ["PositionCheck"]


class PositionCheck:
    """Reads each partition's committed checkpoints as they come and checks their `seq`."""

    def __init__(self) -> None:
        self.read: dict[int, int] = {}  # partition → next snapshots offset to read
        self.seqs: dict[int, int] = {}  # partition → its last committed checkpoint's seq
        # partition → (offset, seq) of its committed checkpoints: the last one below the last
        # stable offset, and those after it
        self.checkpoints: dict[int, list[tuple[int, int]]] = {}
        # partition → seq → its writer's state and position at that seq
        self.held: dict[int, dict[int, tuple[dict[str, Slot], Checkpoint]]] = {}
        # partition → the standby last compared, and its snapshots offset then
        self.compared: dict[int, tuple[SimStandby, int]] = {}

    def step(self, world: World, replies: Iterable[Reply]) -> tuple[str, str] | None:
        """The rule that broke since the last step and how (None: nothing); `replies` are
        those received."""
        broke = self._positions(world, replies)
        if broke is not None:
            return "positions", broke
        broke = self._standbys(world)
        return None if broke is None else ("standby", broke)

    def _standbys(self, world: World) -> str | None:
        """Each standby holds what its writer held at the standby's `seq` (the writer's is
        kept per committed `seq`, while the partition has a standby), and one that has read
        everything committed stands at the last `seq`."""
        for p, standby in sorted(world.standbys.items()):
            committed, worker = self.seqs.get(p, 0), world.partitions[p]
            held = self.held.setdefault(p, {0: ({}, Checkpoint(0))})
            if worker.seq == committed and committed not in held:
                held[committed] = dict(worker.states.items()), _copy(worker.checkpoint())
            readable = self._readable(world, p)
            if standby.seq < readable and standby.caught_up():
                return f"p{p}: a standby read to the end is at seq {standby.seq}, not {readable}"
            last = self.compared.get(p)
            if last is not None and last[0] is standby and last[1] == standby.snapshots_at:
                continue  # it has read nothing since it was compared
            self.compared[p] = standby, standby.snapshots_at
            expected = held.get(standby.seq)
            if expected is None:
                return f"p{p}: a standby stands at seq {standby.seq}, its writer at {committed}"
            c = standby.committed
            if c.position() != expected[1]:
                return (
                    f"p{p}: a standby at seq {standby.seq} stands at {c.position()}, its writer "
                    f"stood at {expected[1]}"
                )
            if dict(c.states.items()) != expected[0]:
                return f"p{p}: a standby at seq {standby.seq} holds another state than its writer"
        return None

    def _positions(self, world: World, replies: Iterable[Reply]) -> str | None:
        for p in range(world.count):
            log = world.logs.log(TopicKind.SNAPSHOTS, p)
            for record in log.decided(self.read.get(p, 0)):
                if record.key != CHECKPOINT_KEY:
                    continue
                seq, before = decode_checkpoint(record.value).seq, self.seqs.get(p, 0)
                if seq not in (before, before + 1):
                    return (
                        f"p{p}: a checkpoint at offset {record.offset} has seq {seq} after {before}"
                    )
                self.seqs[p] = seq
                self.checkpoints.setdefault(p, []).append((record.offset, seq))
            self.read[p] = log.decided_end()
        for p in range(world.count):
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

    def _readable(self, world: World, p: int) -> int:
        """The `seq` of partition `p`'s last checkpoint a `read_committed` reader can read."""
        stable = world.logs.log(TopicKind.SNAPSHOTS, p).stable_end()
        known = self.checkpoints.get(p, [])
        below = [i for i, (offset, _) in enumerate(known) if offset < stable]
        if not below:
            return 0
        del known[: below[-1]]  # the earlier ones are never the last readable again
        return known[0][1]


def _copy(checkpoint: Checkpoint) -> Checkpoint:
    """A deep copy (the worker's marks and flows are its own to change)."""
    return decode_checkpoint(encode_checkpoint(checkpoint))
