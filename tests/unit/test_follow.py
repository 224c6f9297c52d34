"""A standby's tail: snapshot records in, whole batches out only at their checkpoints."""

from __future__ import annotations

import pytest

from topology.codec.checkpoint import CHECKPOINT_KEY, encode_checkpoint
from topology.codec.keys import TOUCH_KEY
from topology.codec.wire import CodecError
from topology.envelopes import Checkpoint
from topology.follow import Batch, Batches
from topology.moves import SLOT_RECORD_KEY, SlotRecord, encode_slot_record
from topology.routing import RoutingTable


def checkpoint(seq: int) -> Checkpoint:
    return Checkpoint(next_offset=seq * 10, clock_ms=1_000 + seq, remembered={}, seq=seq)


def feed(batches: Batches, records: list[tuple[bytes | None, bytes | None]]) -> list[Batch]:
    return [b for k, v in records if (b := batches.feed(k, v)) is not None]


def test_a_batch_is_handed_out_only_when_its_checkpoint_arrives() -> None:
    tail = Batches()
    assert feed(tail, [(b"a", b"1"), (b"b", b"2")]) == []
    assert tail.pending == [(b"a", b"1"), (b"b", b"2")]
    [batch] = feed(tail, [(CHECKPOINT_KEY, encode_checkpoint(checkpoint(7)))])
    assert batch.records == [(b"a", b"1"), (b"b", b"2")]
    assert batch.checkpoint.seq == 7
    assert tail.pending == []


def test_a_fetch_ending_inside_a_batch_keeps_its_first_part_pending() -> None:
    tail = Batches()
    first = feed(tail, [(b"a", b"1"), (CHECKPOINT_KEY, encode_checkpoint(checkpoint(1))),
                        (b"b", b"2")])  # fmt: skip
    assert [b.checkpoint.seq for b in first] == [1]
    assert [b.records for b in first] == [[(b"a", b"1")]]
    second = feed(tail, [(b"a", None), (CHECKPOINT_KEY, encode_checkpoint(checkpoint(2)))])
    assert [b.records for b in second] == [[(b"b", b"2"), (b"a", None)]]


def test_touches_are_skipped_and_a_tick_is_a_batch_of_no_records() -> None:
    tail = Batches()
    batches = feed(tail, [(TOUCH_KEY, None), (CHECKPOINT_KEY, encode_checkpoint(checkpoint(3)))])
    assert batches == [Batch([], checkpoint(3))]


def test_a_checkpoint_that_does_not_decode_is_refused() -> None:
    with pytest.raises(CodecError):
        Batches().feed(CHECKPOINT_KEY, b"\x01junk")


def test_a_slot_record_goes_with_its_batch_and_is_no_snapshot() -> None:
    table = RoutingTable.initial(2, 8)
    record = SlotRecord.of(table.assign((0,), 1, 1), [2, 4, 6])
    tail = Batches()
    handoff = [
        (b"a", None),
        (SLOT_RECORD_KEY, encode_slot_record(record)),
        (CHECKPOINT_KEY, encode_checkpoint(checkpoint(4))),
    ]
    [batch] = feed(tail, handoff)
    assert batch.records == [(b"a", None)], "the tombstone, not the slot record"
    assert batch.slot_record == record
    [next_batch] = feed(tail, [(CHECKPOINT_KEY, encode_checkpoint(checkpoint(5)))])
    assert next_batch.slot_record is None, "only the batch that made the move carries it"
