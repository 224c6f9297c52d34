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
    RoutingRecord,
    ServiceRecord,
    adoptable,
    application_partitions,
    decode_control,
    encode_control,
)
from topology.routing import RoutingTable, plan_moves

GROWN = RoutingTable.initial(4, 960)
for version, move in enumerate(plan_moves(GROWN, 8), start=1):
    GROWN = GROWN.assign(move.slots, move.target, version)


@pytest.mark.parametrize(
    ("record", "key"),
    [
        (ServiceRecord(4, True, 1.5), b"service"),
        (ServiceRecord(4, True, 1.5, slots=960), b"service"),
        (RoutingRecord(GROWN, 2.5), b"routing"),
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
        RoutingRecord(RoutingTable.initial(2, 480)),
        RoutingRecord(GROWN),
    ):
        desired.apply(decode_control(encode_control(record)[1]))
    assert desired.service == ServiceRecord(2, False)
    assert desired.routing == RoutingRecord(GROWN)
    assert desired.partition(0) == PartitionRecord(0, generation=1, node_id="b")
    assert desired.rebuilds[0].phase is RebuildPhase.DONE
    assert desired.rebuilds[0].rate == 10.0
    assert RebuildPhase.SWITCHING.active and not RebuildPhase.DONE.active


def test_a_partition_record_keeps_its_standbys_nodes_and_older_records_decode_without() -> None:
    record = PartitionRecord(2, node_id="a", starts=1, nodes={1: "b"})
    assert decode_control(encode_control(record)[1]) == record
    older = msgspec.msgpack.encode({"type": "partition", "partition": 2, "node_id": "a"})
    assert decode_control(older) == PartitionRecord(2, node_id="a", nodes={})


class ServiceBeforeSlots(msgspec.Struct, frozen=True, tag="service"):
    """The service record as written before slots existed."""

    partitions: int
    serving: bool
    updated_at: float = 0.0


def test_a_service_record_written_before_slots_decodes_with_none_assigned() -> None:
    older = msgspec.msgpack.encode(ServiceBeforeSlots(4, True, 3.0))
    assert decode_control(older) == ServiceRecord(4, True, 3.0, slots=0)


def test_a_routing_table_of_960_slots_takes_a_few_kilobytes() -> None:
    assert GROWN.version == 96 and GROWN.modulus == 8
    _, value = encode_control(RoutingRecord(GROWN))
    assert len(value) < 3 * 1024


def test_a_malformed_routing_table_is_refused() -> None:
    forged = msgspec.msgpack.encode(
        {"type": "routing", "table": {"owners": [0, 1], "moved_at": [0]}}
    )
    with pytest.raises(ControlDecodeError):
        decode_control(forged)


def test_the_count_is_the_configured_one_until_recorded_then_the_recorded_one_with_slots() -> None:
    assert application_partitions(None, 2) == 2
    assert application_partitions(ServiceRecord(2, True), 2) == 2
    assert application_partitions(ServiceRecord(4, True, slots=480), 2) == 4
    with pytest.raises(ValueError, match="4 partitions, not 2, and no slots"):
        application_partitions(ServiceRecord(4, True), 2)


def test_a_count_is_adopted_only_with_slots_and_only_upwards_to_s() -> None:
    slotted = ServiceRecord(2, True, slots=480)
    assert adoptable(slotted, 4, 480)
    assert not adoptable(ServiceRecord(4, True, slots=480), 4, 480)  # done already
    for service, partitions, slots, refusal in [
        (None, 4, 480, "no slots"),
        (ServiceRecord(2, True), 4, 480, "no slots"),
        (slotted, 4, 960, "480 slots, not 960"),
        (slotted, 1, 480, "not to 1"),
        (slotted, 481, 480, "not to 481"),
    ]:
        with pytest.raises(ValueError, match=refusal):
            adoptable(service, partitions, slots)
