"""Control records: round trips, keys, and the desired state folded from them."""

from __future__ import annotations

import msgspec
import pytest

from topology.control import (
    ControlDecodeError,
    DesiredState,
    PartitionRecord,
    RebuildPhase,
    RebuildRecord,
    ServiceRecord,
    decode_control,
    encode_control,
)


@pytest.mark.parametrize(
    ("record", "key"),
    [
        (ServiceRecord(4, True, 1.5), b"service"),
        (PartitionRecord(3, generation=2, paused=True, node_id="n1", starts=5), b"partition/3"),
        (RebuildRecord(1, 2, RebuildPhase.SWITCHING, 9.0, events=10), b"rebuild/1"),
    ],
)
def test_records_round_trip_under_their_key(record: object, key: bytes) -> None:
    encoded_key, value = encode_control(record)  # type: ignore[arg-type]
    assert encoded_key == key
    assert decode_control(value) == record


def test_garbage_is_refused() -> None:
    with pytest.raises(ControlDecodeError):
        decode_control(b"\x93\x01")


def test_desired_state_keeps_the_latest_record_per_key() -> None:
    desired = DesiredState()
    assert desired.partition(7) == PartitionRecord(7)
    for record in (
        ServiceRecord(2, True),
        PartitionRecord(0, node_id="a"),
        PartitionRecord(0, generation=1, node_id="b"),
        RebuildRecord(0, 1, RebuildPhase.REPLAYING, 1.0),
        RebuildRecord(0, 1, RebuildPhase.DONE, 1.0, events=5, replay_seconds=0.5),
        ServiceRecord(2, False),
    ):
        desired.apply(decode_control(encode_control(record)[1]))
    assert desired.service == ServiceRecord(2, False)
    assert desired.partition(0) == PartitionRecord(0, generation=1, node_id="b")
    assert desired.rebuilds[0].phase is RebuildPhase.DONE
    assert desired.rebuilds[0].rate == 10.0
    assert RebuildPhase.SWITCHING.active and not RebuildPhase.DONE.active


def test_a_partition_record_keeps_its_standbys_nodes_and_older_records_decode_without() -> None:
    record = PartitionRecord(2, node_id="a", starts=1, nodes={1: "b"})
    assert decode_control(encode_control(record)[1]) == record
    older = msgspec.msgpack.encode({"type": "partition", "partition": 2, "node_id": "a"})
    assert decode_control(older) == PartitionRecord(2, node_id="a", nodes={})
