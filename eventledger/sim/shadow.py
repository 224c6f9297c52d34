"""The online rebuild of one partition in the simulator: the shadow (`actors.shadow`) and the
driver's switch (`actors.rebuild_driver`, `actors.generations`), with the real pure code
(`topology.restore`: `resume_rebuild`, `apply_event_records`, `TailEnd`; the switch's
`checked_handover`) and the in-memory logs in place of Kafka.

Invariants (the real ones): the shadow reads `events[p]` only `read_committed` and writes
only its own generation, through its own transactional id (`rebuild-{p}`: a new shadow
fences the one before and resumes from its checkpoints); its checkpoints are stamped with
the events offset reached. `finish` is called only while the live partition is paused; it
replays to `TailEnd`'s end, which is the events end it reads (the last stable offset, which
may lie below the last batch while that batch's markers have not landed) and at least
`at_least`; the simulator's steps pass while it waits, as time does in the real one's loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.messages import Paused
from actors.shadow import Handover
from eventledger.sim.logs import Logs, Record
from topology.codec.aggregate import Codec
from topology.envelopes import Slot
from topology.restore import TailEnd, apply_event_records, resume_rebuild
from topology.topics import TopicKind

__all__ = ["SimRebuild", "SimShadow", "shadow_txn"]


def shadow_txn(partition: int) -> str:
    """The transactional id of partition `partition`'s shadow."""
    return f"rebuild-{partition}"


class SimShadow:
    """A shadow rebuild of `partition` into `generation`: fences the shadow before it and
    resumes from its checkpoints when made."""

    def __init__(self, codec: Codec, logs: Logs, *, partition: int, generation: int) -> None:
        self.codec = codec
        self.logs = logs
        self.partition = partition
        self.generation = generation
        self.epoch = logs.init(shadow_txn(partition))
        mine = logs.log(TopicKind.SNAPSHOTS, partition, generation).read(0)
        resumed = resume_rebuild(codec, ((r.key, r.value) for r in mine))
        self.states: dict[str, Slot] = resumed.states
        self.encoded = resumed.encoded
        self.position = resumed.position  # the next events offset to read
        self.at_end = False
        self.changed: set[str] = set()
        self.target: TailEnd | None = None  # set by the first `finish`

    def end(self) -> int:
        """The events end a `read_committed` reader is told now (the last stable offset)."""
        return self.logs.log(TopicKind.EVENTS, self.partition).stable_end()

    def replay(self, records: int | None) -> int:
        """One fetch of up to `records` events (None: all there are to read), folded; a fetch
        that reaches the end says so (`at_end`: the tail then stands at the end). Returns how
        many were applied."""
        log = self.logs.log(TopicKind.EVENTS, self.partition)
        stable = log.stable_end()
        fetched: list[Record] = []
        self.at_end = True
        for record in log.read(self.position):
            if records is not None and len(fetched) >= records:
                self.at_end = False
                break
            fetched.append(record)
        if fetched:
            self.position = fetched[-1].offset + 1
        if self.at_end:  # past markers and aborted records, to the end
            self.position = max(self.position, stable)
        return apply_event_records(
            self.codec, self.states, ((r.key, r.value, None) for r in fetched), self.changed
        )

    def checkpoint(self) -> None:
        """One transaction: the snapshot of every aggregate changed since the last one,
        stamped with the position reached."""
        txn = self.logs.transaction(shadow_txn(self.partition), self.epoch)
        written = {}
        for aggregate_id in sorted(self.changed):
            key, value = self.codec.snapshots.record(
                aggregate_id, self.states[aggregate_id], self.position
            )
            txn.put(TopicKind.SNAPSHOTS, self.partition, key, value, self.generation)
            written[key] = value
        txn.commit()
        self.encoded.update(written)
        self.changed.clear()

    def finish(self, at_least: int) -> Handover | None:
        """`ShadowRebuild.finish`'s loop, one pass: replay what there is to read, towards
        `TailEnd(at_least)`; then the last checkpoint and the hand-over, or None while the
        end aimed at is not readable yet (the real loop polls on; call again)."""
        if self.target is None:
            self.target = TailEnd(at_least)
            self.target.aim(self.end())
        target = self.target
        if not target.reached(self.position, self.at_end):
            self.replay(None)
            if self.at_end and not target.reached(self.position, self.at_end):
                target.aim(self.end())
        if not target.reached(self.position, self.at_end):
            return None
        self.checkpoint()
        return Handover(
            partition=self.partition,
            generation=self.generation,
            position=self.position,
            snapshots=dict(self.encoded),
            replayed=0,
            seconds=0.0,
        )


@dataclass
class SimRebuild:
    """One partition's rebuild as the coordinator drives it: its generation, its shadow
    (None: not started, or dead: the next `ShadowReplay` starts one, which resumes), and
    how far the switch has gone (paused → handed over → switched; a failed switch goes back
    to replaying, as the driver's `_settle` does)."""

    generation: int
    shadow: SimShadow | None = None
    paused: Paused | None = None  # the live partition holds (the gate), since this pause
    handover: Handover | None = None
    switched: bool = False

    def settle(self) -> None:
        """The switch failed before it switched: resume on the old generation; the shadow is
        retired (a new one resumes from its checkpoints)."""
        self.shadow, self.paused, self.handover = None, None, None
