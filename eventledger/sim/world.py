"""The simulated ledger: P partitions over in-memory logs, clients on reply lanes, one
simulated wall clock (each partition and client off by a fixed skew), and the operations
that move it. Everything is decided by the ops; nothing here draws a random number but the
batch mix, which comes from the op itself, so a trace replays exactly."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventledger.settlement import forced_leg
from eventledger.sim.logs import FencedError, Logs
from eventledger.sim.moves import SimRepartition
from eventledger.sim.ops import (
    Advance,
    Batch,
    Crash,
    DriverCrash,
    DriverTick,
    Follow,
    Forget,
    Learn,
    Op,
    Rebuild,
    RebuildOp,
    RebuildSwitch,
    Repartition,
    Resume,
    Send,
    Settle,
    Stop,
    Takeover,
    Wake,
)
from eventledger.sim.partition import MOVED_ENTRY, Begun, Handover, SimPartition, StepReport
from eventledger.sim.rebuild import Rebuilds
from eventledger.sim.standby import SimStandby
from ledger.state import MAX_OPEN_TRANSFERS
from topology.codec.aggregate import Codec
from topology.codec.commands import command_fingerprint, encode_command
from topology.codec.keys import encode_key
from topology.codec.replies import decode_reply_record
from topology.codes import PoisonCode
from topology.envelopes import Answered, Deferred, Reply
from topology.limits import MAX_SNAPSHOT_BYTES
from topology.moves import SlotRecord
from topology.partitioner import partition_for
from topology.routing import RoutingTable
from topology.step.records import OutRecord
from topology.topics import TopicKind

__all__ = ["Attempted", "SimConfig", "World", "owner"]

_SET_ASIDE = ("eventledger.error.code", PoisonCode.UNPROCESSABLE.encode())  # a dlq header


def owner(account: str) -> str:
    """The principal that sends every command of `account` (one of a few, so several
    accounts share one): the events a command causes, on both sides of a transfer, name the
    owner of the account it was sent to."""
    return f"owner-{zlib.crc32(account.encode()) % 7}"


@dataclass(frozen=True)
class SimConfig:
    """The simulated deployment."""

    partitions: int = 3
    reply_lanes: int = 2
    window_ms: int = 10_000
    skews_ms: tuple[int, ...] = (0, 0, 0)  # per partition: its clock's offset from wall time
    start_ms: int = 1_000_000_000  # wall time when the run starts
    max_open_transfers: int = MAX_OPEN_TRANSFERS  # the ledger's cap, per account and side
    max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES  # the flow's limit on a snapshot or view
    standbys: tuple[int, ...] = ()  # the partitions that have a standby
    marker_lag: int = 0  # the most scheduler steps a commit's marker lands after it
    marker_seed: int = 0  # what each marker's lag is drawn from
    rebuild_guard: bool = True  # False: the rebuild before commit 7beaf85 (see Rebuilds)
    growths: tuple[int, ...] = ()  # the counts the seed's repartitions grow or shrink to
    slots_per_partition: int = 12  # S = partitions × this, once a repartition assigns slots
    move_guard: bool = True  # False: a source does not adopt its handoff's slot record


@dataclass
class Attempted:
    """One command (an id with one content on one account) and what its client saw."""

    account: str
    command_id: str
    command: Any
    fingerprint: int
    first_attempt_ms: int
    lanes: list[int] = field(default_factory=list)  # one entry per attempt
    replies: list[Reply] = field(default_factory=list)  # final replies, as received

    @property
    def answered(self) -> bool:
        return bool(self.replies)


class World:
    """The whole simulated system at one moment."""

    def __init__(self, codec: Codec, config: SimConfig) -> None:
        self.codec = codec
        self.config = config
        self.logs = Logs(marker_lag=config.marker_lag, seed=config.marker_seed)
        self.now_ms = config.start_ms
        self.stopped: set[int] = set()
        self.count = config.partitions  # the application's partition count (it only grows)
        self.routing: RoutingTable | None = None  # the table last pushed to the workers
        self.lane_tables: dict[int, RoutingTable] = {}  # lane → the table it routes by
        self.repartition = SimRepartition(
            self,
            self.logs,
            partitions=config.partitions,
            slots_per_partition=config.slots_per_partition,
            clock=lambda: self.now_ms / 1000,
        )
        self.partitions = [self._worker(p, None) for p in range(config.partitions)]
        self.standbys = {p: self._standby(p) for p in config.standbys}
        # partition → its last writer taken over (paused, perhaps inside a batch)
        self.zombies: dict[int, tuple[SimPartition, Begun | None]] = {}
        self.takeovers = 0
        self.fenced = 0  # zombie batches refused by the fence
        self.reply_positions: dict[int, int] = {}
        # (account, command id) → the commands sent under it, by (fingerprint, first attempt)
        self.sent: dict[tuple[str, str], dict[tuple[int, int], Attempted]] = {}
        self.crossed: list[str] = []  # replies that answer nothing that was sent
        self.last_step: StepReport | None = None
        # (account, command id, first attempt of the decision) and a remembered answer of it,
        # received since the last check
        self.decisions: list[tuple[tuple[str, str, int], Answered]] = []
        self.touched: set[int] = set()  # partitions whose worker changed since the last check
        self._owners: dict[str, int] = {}
        self.lost: dict[int, list[tuple[bytes, bytes]]] = {}  # partition → set-aside legs
        self.rebuilds = Rebuilds(self.codec, self.logs, guard=config.rebuild_guard)

    def _worker(self, p: int, handover: Handover | None) -> SimPartition:
        c = self.config
        return SimPartition(
            self.codec,
            self.logs,
            partition=p,
            partitions=c.partitions,
            reply_lanes=c.reply_lanes,
            window_ms=c.window_ms,
            max_snapshot_bytes=c.max_snapshot_bytes,
            handover=handover,
            routing=self.routing,
            move_guard=c.move_guard,
        )

    def _standby(self, p: int) -> SimStandby:
        return SimStandby(self.codec, self.logs, partition=p, reply_lanes=self.config.reply_lanes)

    # -- time and placement --------------------------------------------------------------------

    def wall(self, partition: int) -> int:
        skews = self.config.skews_ms
        return self.now_ms + (skews[partition] if partition < len(skews) else 0)

    def partition_of(self, account: str, lane: int | None = None, foreign: bool = False) -> int:
        """Where a client sends `account`'s commands: by the table its `lane` learned; with
        none, Kafka's layout over the original count (= the table at version 0); a foreign
        producer by Kafka's layout over today's count."""
        if foreign:
            return partition_for(encode_key(account), self.count)
        table = None if lane is None else self.lane_tables.get(lane)
        if table is not None:
            return table.owner_of(encode_key(account))
        owner = self._owners.get(account)
        if owner is None:
            owner = self._owners[account] = partition_for(
                encode_key(account), self.config.partitions
            )
        return owner

    # -- operations ----------------------------------------------------------------------------

    def apply(self, op: Op) -> None:
        """Carry out one op. A `Batch`, `Takeover` or `Wake` may raise (the pure code
        failed, or a promotion found its id memory behind: the checker's concern); every
        other op never does. Each op is one scheduler step: the markers due land first."""
        self.logs.tick()
        self.last_step = None
        if getattr(op, "partition", 0) >= self.count:
            return  # a partition not grown yet (a shortened trace may ask for one)
        if isinstance(op, Batch | Crash | RebuildSwitch | Forget | Takeover | Wake):
            self.touched.add(op.partition)
        match op:
            case Send():
                self._send(op)
            case Batch(partition=p, limit=limit, mix=mix, fault=fault):
                if p in self.stopped or self.rebuilds.paused(p):
                    return
                worker = self.partitions[p]
                self.last_step = worker.step(
                    self.wall(p), random.Random(mix), limit=limit, fault=fault
                )
                step = self.last_step
                if step.committed and step.result is not None:
                    self._note_lost(p, step.result.dlq)
            case Settle(partition=p, refund=refund):
                self._settle(p, refund)
            case Advance(ms=ms):
                self.now_ms += ms
            case Stop(partition=p):
                self.stopped.add(p)
            case Resume(partition=p):
                self.stopped.discard(p)
            case Crash(partition=p, forget=forget):
                worker = self.partitions[p]
                worker.restore(forget_before=worker.now(self.wall(p)) if forget else None)
            case Forget(partition=p):
                worker = self.partitions[p]
                worker.forget(worker.now(self.wall(p)))
            case Rebuild() if self.repartition.desired.repartition is not None:
                return  # refused once a repartition was asked for (the design's rule)
            case _ if isinstance(op, RebuildOp):
                p = op.partition
                self.rebuilds.apply(op, self.partitions[p], p not in self.stopped)
            case Follow(partition=p, records=records):
                if p in self.standbys:
                    self.standbys[p].follow(records)
            case Takeover():
                self._take_over(op)
            case Wake():
                self._wake(op)
            case Learn(lane=lane):
                table = self.repartition.published
                if table is not None:
                    self.lane_tables[lane] = table
            case Repartition() | DriverTick() | DriverCrash():
                self.repartition.apply(op, set(self.rebuilds.active))

    # -- the repartition's seams (`eventledger.sim.moves`) -------------------------------------

    def grow(self, partitions: int) -> None:
        """The application grows to `partitions`: a worker (and a standby, where the seed has
        them) for each new partition; they restore nothing and own no slot."""
        for p in range(self.count, partitions):
            self.partitions.append(self._worker(p, None))
            if self.standbys:
                self.standbys[p] = self._standby(p)
        self.count = max(self.count, partitions)

    def push(self, table: RoutingTable) -> None:
        """The published `table` handed to every running worker (a zombie keeps its own)."""
        self.routing = table
        for worker in self.partitions:
            worker.routing = table

    def slot_record(self, partition: int) -> SlotRecord | None:
        """What partition `partition`'s member reports: its worker's slot record."""
        return self.partitions[partition].slot_record

    def _take_over(self, op: Takeover) -> None:
        """The writer of `op.partition` is declared dead; it stays, paused, as a zombie (inside
        a batch, its transaction open, when `op.midway`). The standby is promoted (fence,
        catch up, hand over) and a new standby restores and follows."""
        p = op.partition
        standby = self.standbys.get(p)
        if standby is None:
            return
        old = self.partitions[p]
        begun = None
        if op.midway and p not in self.stopped and not self.rebuilds.paused(p):
            started = old.begin(self.wall(p), random.Random(op.mix), limit=op.limit)
            begun = started if isinstance(started, Begun) else None
        worker = self._worker(p, standby.promote())
        worker.max_snapshot_bytes = old.max_snapshot_bytes
        self.partitions[p] = worker
        self.zombies[p] = (old, begun)
        self.stopped.discard(p)  # the new writer is another process
        self.standbys[p] = self._standby(p)
        self.takeovers += 1

    def _wake(self, op: Wake) -> None:
        """The zombie of `op.partition` wakes: it commits the batch it was paused in, or runs
        one. Fenced, it stops for good; a batch it commits (it must not) is the checker's."""
        p = op.partition
        found = self.zombies.get(p)
        if found is None:
            return
        zombie, begun = found
        try:
            if begun is not None:
                step = zombie.end(begun)
            else:
                step = zombie.step(self.wall(p), random.Random(op.mix), limit=op.limit)
        except FencedError:
            del self.zombies[p]
            self.fenced += 1
            return
        self.zombies[p] = (zombie, None)
        self.last_step = step

    def _send(self, op: Send) -> None:
        value = encode_command(
            op.account,
            op.command,
            command_id=op.command_id,
            expected_version=op.expected_version,
            reply_to=op.lane,
            first_attempt_ms=op.first_attempt_ms,
            principal=owner(op.account),
        )
        envelope, _ = self.codec.commands.decode(value)
        fingerprint = command_fingerprint(envelope)
        by_content = self.sent.setdefault((op.account, op.command_id), {})
        attempted = by_content.get((fingerprint, op.first_attempt_ms))
        if attempted is None:
            attempted = by_content[fingerprint, op.first_attempt_ms] = Attempted(
                op.account, op.command_id, op.command, fingerprint, op.first_attempt_ms
            )
        attempted.lanes.append(op.lane)
        partition = self.partition_of(op.account, op.lane, op.foreign)
        self.logs.produce_committed(TopicKind.COMMANDS, partition, encode_key(op.account), value)

    def _note_lost(self, p: int, dead_letters: Sequence[OutRecord]) -> None:
        """The legs of partition `p` set aside in a committed batch (their transactions kept
        aborting, or the size guard refused them), for an operator to settle."""
        for dead in dead_letters:
            if _SET_ASIDE not in dead.headers:
                continue
            envelope, _ = self.codec.commands.decode(dead.value)  # set aside: it decodes
            if envelope.type in self.codec.internal_types:  # a leg (a deadline's too)
                self.lost.setdefault(p, []).append((dead.key or b"", dead.value or b""))

    def _settle(self, p: int, refund: bool) -> None:
        """The operator's settlement of partition `p`'s oldest lost leg not settled yet."""
        lost = self.lost.get(p)
        if not lost:
            return
        key, value = lost.pop(0)
        how = "refund" if refund else "redrive"
        forced = forced_leg(self.codec, value, refund=refund, operator="sim", reason=how)
        self.logs.produce_committed(TopicKind.INTERNAL, p, key, forced)

    # -- reading --------------------------------------------------------------------------------

    def poll_replies(self) -> None:
        """Read the committed replies records not read yet; each answer is recorded with the
        command it answers (an id in flight is no answer: clients skip it)."""
        lanes = self.config.reply_lanes
        for p in range(self.count):
            for lane in range(lanes):
                partition = p * lanes + lane
                log = self.logs.log(TopicKind.REPLIES, partition)
                position = self.reply_positions.get(partition, 0)
                for record in log.read(position):
                    assert record.value is not None
                    if MOVED_ENTRY in record.headers:
                        continue  # an id entry that moved with its account: no client's answer
                    answer = decode_reply_record(record.value)
                    if not isinstance(answer, Deferred):
                        self._record(lane, answer)
                self.reply_positions[partition] = log.stable_end()

    def _record(self, lane: int, answer: Reply | Answered) -> None:
        reply = answer.reply if isinstance(answer, Answered) else answer
        by_content = self.sent.get((reply.aggregate_id, reply.command_id))
        if not by_content:  # no client waits for it (an entry of the memory): skipped
            return
        if isinstance(answer, Answered):  # it names the content and the decision's attempt
            candidates = [a for (fp, _), a in by_content.items() if fp == answer.fingerprint]
            if not candidates:
                self.crossed.append(f"lane {lane} got a reply to another command: {answer}")
                return
            decision = (reply.aggregate_id, reply.command_id, answer.first_attempt_ms)
            self.decisions.append((decision, answer))
        else:  # a refusal that is not remembered: it answers the lane's own attempt
            candidates = list(by_content.values())
        on_lane = [a for a in candidates if lane in a.lanes]
        if not on_lane:
            self.crossed.append(f"lane {lane} got a reply to an id it never sent: {reply}")
            return
        for attempted in on_lane:
            attempted.replies.append(reply)

    def idle(self) -> bool:
        """No marker is owed and no running partition has records to read or a deadline
        due."""
        return not self.logs.owed and not any(
            w.has_work(self.wall(w.partition))
            for w in self.partitions
            if w.partition not in self.stopped and not self.rebuilds.paused(w.partition)
        )
