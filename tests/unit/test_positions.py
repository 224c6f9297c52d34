"""Positions: the commit sequence a partition counts (+1 per committed batch, ticks and
set-asides included; kept by checkpoints that commit no batch), the position every reply
carries, and the order of a batch's records in its transaction (the checkpoint after the
snapshots)."""

from __future__ import annotations

from typing import Any

from actors.commit import BatchCommit
from actors.committed import Committed
from actors.messages import Counters
from ledger import Deposit, OpenAccount, Transfer
from topology.aborts import AbortPolicy
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.codec.keys import encode_key
from topology.codec.replies import decode_answer
from topology.envelopes import Checkpoint, Position
from topology.settings import Settings
from topology.step.aside import set_aside
from topology.step.batch import process_batch
from topology.step.records import BatchResult
from topology.store import SnapshotStore
from topology.topics import TopicKind

from .support import LEDGER_CODEC, NOW, SEQ, SOURCE, Memory, commit, record, run

TOPICS = {kind: f"t.{kind}" for kind in TopicKind}


def committed_partition() -> Committed:
    return Committed(LEDGER_CODEC, 0, dict(TOPICS), SnapshotStore(LEDGER_CODEC), clock=lambda: NOW)


def step(c: Committed, records: list[Any], ids: Memory, due: tuple[str, ...] = ()) -> BatchResult:
    """One batch of the partition held by `c`, as `BatchCommit` runs it, committed."""
    now_ms = c.now_ms()
    result = process_batch(
        LEDGER_CODEC,
        c.states,
        records,
        partition=0,
        partitions=1,
        source_topic=SOURCE,
        events_offset=c.events_end,
        ids=ids,
        window_ms=86_400_000,
        now_ms=now_ms,
        seq=c.next_seq,
        positions=(c.next_offset, c.internal_offset),
        due=due,
    )
    checkpoint = c.checkpoint(result, now_ms)
    ids.update(result.remembered)
    c.installed(result, checkpoint, now_ms)
    return result


def positions_of(result: BatchResult) -> list[Position | None]:
    answers = [decode_answer(r.value or b"") for r in result.replies]
    return [a.position for a in answers if a is not None]


def test_every_reply_of_a_batch_carries_its_partition_and_commit_sequence() -> None:
    result = run(
        {},
        [
            record(0, "a", OpenAccount("EUR"), "c-1"),  # accepted
            record(1, "a", OpenAccount("EUR"), "c-2"),  # refused by the account
            record(2, "a", Deposit(5), "c-3", expected_version=9),  # refused by the flow
        ],
        partition=0,
        seq=SEQ,
    )
    assert positions_of(result) == [Position(0, SEQ)] * 3


def test_a_retry_repeats_the_first_position_of_its_reply() -> None:
    committed, ids = {}, Memory()
    first = run(committed, [record(0, "a", OpenAccount("EUR"), "c-1")], ids=ids, seq=3)
    commit(committed, ids, first)
    again = run(committed, [record(1, "a", OpenAccount("EUR"), "c-1")], ids=ids, seq=9)
    assert positions_of(again) == positions_of(first) == [Position(0, 3)]


def test_the_commit_sequence_grows_by_one_per_batch_and_per_tick() -> None:
    c, ids = committed_partition(), Memory()
    assert (c.seq, c.next_seq) == (0, 1)
    opened = step(c, [record(0, "a", OpenAccount("EUR"), "c-1")], ids)
    assert c.seq == 1 and positions_of(opened) == [Position(0, 1)]
    step(c, [record(1, "b", OpenAccount("EUR"), "c-2"), record(2, "a", Deposit(9), "c-3")], ids)
    assert c.seq == 2
    held = step(c, [record(3, "a", Transfer("b", 5, pending=True, timeout_ms=1), "t-1")], ids)
    assert c.seq == 3 and set(positions_of(held)) == {Position(0, 3)}  # the client's, the leg's
    # nothing to read, a deadline due: a tick, committed like any batch
    c.clock = lambda: NOW + 10
    due = tuple(c.due(c.now_ms()))
    assert due == ("a",)
    tick = step(c, [], ids, due=due)
    assert tick.outcomes and c.seq == 4
    assert set(positions_of(tick)) == {Position(0, 4)}
    assert c.at(0) == Position(0, 4)


def test_a_set_aside_commits_the_next_sequence_and_its_reply_says_so() -> None:
    c = committed_partition()
    result = set_aside(
        LEDGER_CODEC,
        record(0, "a", Deposit(5), "c-1"),
        "kept aborting",
        partition=0,
        source_topic=SOURCE,
        events_offset=0,
        now_ms=NOW,
        seq=c.next_seq,
        window_ms=86_400_000,
    )
    assert positions_of(result) == [Position(0, 1)]
    assert c.checkpoint(result, NOW).seq == 1


def test_the_sequence_is_kept_by_a_seal_a_restore_and_a_switch() -> None:
    c, ids = committed_partition(), Memory()
    for offset in range(3):
        step(c, [record(offset, "a", OpenAccount("EUR"), f"c-{offset}")], ids)
    seal = c.position()
    assert seal.seq == c.seq == 3  # a checkpoint that commits no batch keeps the sequence
    restarted = committed_partition()
    restarted.restored(SnapshotStore(LEDGER_CODEC), 0, seal)
    assert restarted.seq == 3 and restarted.next_seq == 4
    restarted.switched(SnapshotStore(LEDGER_CODEC), LEDGER_CODEC, 1, "t.snapshots.1")
    assert restarted.seq == 3
    fresh = committed_partition()
    fresh.restored(SnapshotStore(LEDGER_CODEC), 0, None)  # nothing committed yet
    assert fresh.seq == 0


class _RecordingWriter:
    """A transactional writer that records what one transaction produces, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None, bytes | None]] = []

    def begin(self) -> None:
        self.calls.append(("begin", None, None))

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, *_: Any, **__: Any
    ) -> None:
        self.calls.append((topic, key, value))

    def commit(self) -> None:
        self.calls.append(("commit", None, None))


def test_a_transaction_writes_the_checkpoint_after_the_snapshots_and_the_replies_last() -> None:
    c, ids = committed_partition(), Memory()
    records = [record(0, "a", OpenAccount("EUR"), "c-1"), record(1, "b", OpenAccount("EUR"), "c-2")]
    now_ms = c.now_ms()
    result = process_batch(
        LEDGER_CODEC,
        c.states,
        records,
        partition=0,
        partitions=1,
        source_topic=SOURCE,
        events_offset=0,
        ids=ids,
        window_ms=86_400_000,
        now_ms=now_ms,
        seq=c.next_seq,
    )
    writer = _RecordingWriter()
    batch = BatchCommit(
        Settings(app_id="unit", bootstrap_servers="127.0.0.1:1"),
        0,
        c,
        writer=writer,  # type: ignore[arg-type]
        ids=None,  # type: ignore[arg-type]
        counters=Counters(),
        metrics=None,  # type: ignore[arg-type]
        aborts=AbortPolicy(),
        rewind=lambda *_: None,
        wait=lambda _: None,
    )
    batch.transact(result, c.checkpoint(result, now_ms))
    assert writer.calls[0][0] == "begin" and writer.calls[-1][0] == "commit"
    produced = writer.calls[1:-1]
    kinds = [topic for topic, _, _ in produced]
    snapshots = [
        (key, value) for topic, key, value in produced if topic == TOPICS[TopicKind.SNAPSHOTS]
    ]
    assert [key for key, _ in snapshots] == [encode_key("a"), encode_key("b"), CHECKPOINT_KEY]
    assert decode_checkpoint(snapshots[-1][1]) == Checkpoint(
        2, now_ms, c.checkpoint(result, now_ms).remembered, 0, seq=1
    )
    checkpoint_at = produced.index((TOPICS[TopicKind.SNAPSHOTS], CHECKPOINT_KEY, snapshots[-1][1]))
    assert kinds.index(TOPICS[TopicKind.SNAPSHOTS]) < checkpoint_at
    assert kinds[:2] == [TOPICS[TopicKind.EVENTS]] * 2  # the events first
    first_reply = kinds.index(TOPICS[TopicKind.REPLIES])
    assert checkpoint_at < first_reply
    assert set(kinds[first_reply:]) == {TOPICS[TopicKind.REPLIES]}  # the replies last
