"""The coordinator's online rebuilds in the simulator (`actors.rebuild_driver`), one op a
step: request, shadow replay and checkpoints, pause, finish, switch, resume, with the
shadow's death and the live partition's crashes and takeovers drawn in between.

The switch is the real one's (`actors.generations.Switcher.switch`): the events end is read
now (the last stable offset), `checked_handover` checks the hand-over against it and against
the events end the live partition committed, and only then is it installed. With `guard`
off, the simulator runs the rebuild as it was before commit 7beaf85 (no `at_least` for
`finish`, no `committed_end` for the check), so that a test shows the checker finds the
batch that rebuild lost.

Bound: a switched partition goes on in its snapshots log (its writer seals the hand-over and
its checkpoint there, in one transaction, which a restore or a standby then reads as the new
state), where the service goes on in the shadow's generation topic.
"""

from __future__ import annotations

from actors.generations import checked_handover
from actors.messages import Paused
from eventledger.sim.logs import Logs
from eventledger.sim.ops import (
    Rebuild,
    RebuildFinish,
    RebuildOp,
    RebuildPause,
    RebuildResume,
    RebuildSwitch,
    ShadowCrash,
    ShadowReplay,
)
from eventledger.sim.partition import SimPartition
from eventledger.sim.shadow import SimRebuild, SimShadow, shadow_txn
from topology.codec.aggregate import Codec
from topology.store import SnapshotStore
from topology.topics import TopicKind

__all__ = ["Rebuilds"]


class Rebuilds:
    """Every partition's rebuild under way, and the counts of switches done and refused."""

    def __init__(self, codec: Codec, logs: Logs, *, guard: bool = True) -> None:
        self.codec = codec
        self.logs = logs
        self.guard = guard
        self.active: dict[int, SimRebuild] = {}
        self.generations: dict[int, int] = {}  # partition → the generation it serves
        self.used: dict[int, int] = {}  # partition → the last generation a rebuild took
        self.switched = 0
        self.refused: list[str] = []  # why each refused switch was refused

    def paused(self, p: int) -> bool:
        """Whether partition `p` holds for a switch (it runs no batch)."""
        r = self.active.get(p)
        return r is not None and r.paused is not None

    def mid_switch(self) -> list[int]:
        return sorted(p for p, r in self.active.items() if r.paused is not None)

    def apply(self, op: RebuildOp, worker: SimPartition, running: bool) -> None:
        """Carry out one rebuild op on partition `op.partition`, whose worker is `worker`
        (`running`: its process is not stopped; a call to a stopped one waits)."""
        p = op.partition
        if isinstance(op, Rebuild):
            if p not in self.active:
                generation = max(self.generations.get(p, 0), self.used.get(p, 0)) + 1
                self.used[p] = generation
                self.active[p] = SimRebuild(generation)
            return
        r = self.active.get(p)
        if r is None:
            return
        match op:
            case ShadowReplay(records=records, checkpoint=checkpoint) if r.paused is None:
                if r.shadow is None:
                    r.shadow = SimShadow(
                        self.codec, self.logs, partition=p, generation=r.generation
                    )
                    return
                r.shadow.replay(records)
                if checkpoint and r.shadow.changed:
                    r.shadow.checkpoint()
            case ShadowCrash() if r.shadow is not None and not r.switched:
                r.shadow = None
                if r.paused is not None:
                    r.settle()
            case RebuildPause() if r.shadow is not None and r.paused is None and running:
                r.paused = Paused(worker.next_offset, self.generations.get(p, 0), worker.events_end)
            case RebuildFinish() if r.paused is not None and r.handover is None and r.shadow:
                at_least = r.paused.events_end if self.guard else 0
                r.handover = r.shadow.finish(at_least)
            case RebuildSwitch() if r.handover is not None and not r.switched and running:
                self._switch(p, r, worker)
            case RebuildResume() if r.switched:
                del self.active[p]
                self.logs.init(shadow_txn(p))  # the shadow retired, its id fenced

    def _switch(self, p: int, r: SimRebuild, worker: SimPartition) -> None:
        """`Switcher.switch`: check the hand-over against the events end read now and the
        events the partition committed; install it, or refuse it (the switch fails)."""
        assert r.handover is not None
        try:
            store = checked_handover(
                p,
                r.generation,
                r.handover,
                events_end=self.logs.log(TopicKind.EVENTS, p).stable_end(),
                committed_end=worker.events_end if self.guard else 0,
                states=worker.states,
                store=SnapshotStore(self.codec),
            )
        except (RuntimeError, ValueError) as refused:
            self.refused.append(str(refused))
            r.settle()
            return
        worker.switched(store, r.handover.snapshots)
        self.generations[p] = r.generation
        r.switched = True
        self.switched += 1
