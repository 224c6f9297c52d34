"""The shared records of a repartition's moves: codecs both ways, and what a slot record
says about a move's progress."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from topology.codec.wire import CodecError
from topology.moves import (
    MoveSlots,
    RecordKind,
    SlotRecord,
    decode_move,
    decode_slot_record,
    encode_move,
    encode_slot_record,
    record_kind,
)
from topology.routing import RoutingTable


@given(st.integers(1, 8), st.integers(1, 30))
def test_initial_slot_record_owns_the_partitions_slots_in_the_table(n: int, k: int) -> None:
    table = RoutingTable.initial(n, n * k)
    for p in range(n):
        record = SlotRecord.initial(p, table)
        assert record.slots() == [s for s in range(n * k) if s % n == p]
        assert decode_slot_record(encode_slot_record(record)) == record


def test_a_move_is_handed_off_by_its_source_and_held_by_its_target() -> None:
    table = RoutingTable.initial(2, 8).assign((1, 3), 2, 1)
    source = SlotRecord.of(table, [5, 7])
    target = SlotRecord.of(table, [1, 3])
    assert source.gave((1, 3), 1) and not source.holds((1, 3), 1)
    assert target.holds((1, 3), 1) and not target.gave((1, 3), 1)
    assert not target.holds((1, 3), 2)  # a later move of the same slots is not installed yet
    before = SlotRecord.initial(1, RoutingTable.initial(2, 8))
    assert not before.gave((1, 3), 1) and not before.holds((1, 3), 1)


def test_move_codec_round_trips_and_refuses_other_bytes() -> None:
    move = MoveSlots("m-1", 3, (2, 5, 9), 4)
    assert decode_move(encode_move(move)) == move
    with pytest.raises(CodecError, match="not a MoveSlots"):
        decode_move(b"\x01")
    with pytest.raises(CodecError, match="not a slot record"):
        decode_slot_record(encode_move(move))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"move_id": "m", "version": 0, "slots": (1,), "target": 1},
        {"move_id": "m", "version": 1, "slots": (), "target": 1},
        {"move_id": "m", "version": 1, "slots": (3, 1), "target": 1},
        {"move_id": "m", "version": 1, "slots": (1, 1), "target": 1},
    ],
)
def test_a_malformed_move_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MoveSlots(**kwargs)  # type: ignore[arg-type]


def test_a_slot_record_with_a_short_bitmap_is_refused() -> None:
    with pytest.raises(ValueError, match="need 2 bytes"):
        SlotRecord(RoutingTable.initial(2, 10), b"\x00")


def test_record_kind_reads_the_header() -> None:
    assert record_kind(None) is None
    assert record_kind([("traceparent", b"x")]) is None
    assert record_kind([("eventledger-record", b"handoff")]) is RecordKind.HANDOFF
    with pytest.raises(ValueError):
        record_kind([("eventledger-record", b"nonsense")])


def test_a_read_of_an_account_not_owned_is_sent_to_its_owner() -> None:
    table = RoutingTable.initial(2, 8)
    key = next(k for k in (f"a-{i}".encode() for i in range(1000)) if table.slot_of(k) == 2)
    source = SlotRecord.initial(0, table)
    assert source.elsewhere(key, None, 0) is None  # owned: answered here
    given = table.assign([2], 3, 1)
    handed = SlotRecord.of(given, [s for s in source.slots() if s != 2])
    assert handed.elsewhere(key, None, 0) == 3  # handed off: to the move's target
    assert handed.elsewhere(key, table, 0) == 3  # an older published table changes nothing
    target = SlotRecord.initial(3, table)  # before its install: the old owner, by the table
    assert target.elsewhere(key, None, 3) == 0
    assert target.elsewhere(key, given, 3) is None  # the table names it: it cannot say better
    other = SlotRecord.initial(1, table)
    assert other.elsewhere(key, given, 1) == 3  # the published table, merged in
