"""Control records: round trips, keys, and the desired state folded from them."""

from __future__ import annotations

import msgspec
import pytest

from topology.control import (
    ControlDecodeError,
    DesiredState,
    MoveRecord,
    MoveState,
    PartitionRecord,
    RebuildPhase,
    RebuildRecord,
    RepartitionPhase,
    RepartitionRecord,
    RoutingRecord,
    ServiceRecord,
    adoptable,
    application_partitions,
    decode_control,
    drained_partitions,
    encode_control,
    serving_partitions,
)
from topology.routing import RoutingTable, plan_moves

GROWN = RoutingTable.initial(4, 960)
for version, move in enumerate(plan_moves(GROWN, 8), start=1):
    GROWN = GROWN.assign(move.slots, move.target, version)

MOVES = tuple(
    MoveRecord(move_id=f"3.{i}", source=m.source, target=m.target, slots=m.slots)
    for i, m in enumerate(plan_moves(RoutingTable.initial(4, 960), 8))
)
MOVING = RepartitionRecord(
    number=3,
    from_partitions=4,
    to_partitions=8,
    slots=960,
    phase=RepartitionPhase.MOVING,
    requested_at=1.0,
    base_version=7,
    moves=(
        msgspec.structs.replace(
            MOVES[0],
            state=MoveState.PUBLISHED,
            version=8,
            requested_at=2.0,
            handed_off_at=2.5,
            installed_at=3.0,
            published_at=3.5,
            handoff_pause_ms=180.0,
            install_pause_ms=310.5,
        ),
        msgspec.structs.replace(MOVES[1], state=MoveState.REQUESTED, version=9, requested_at=2.1),
        *MOVES[2:],
    ),
)


@pytest.mark.parametrize(
    ("record", "key"),
    [
        (ServiceRecord(4, True, 1.5), b"service"),
        (ServiceRecord(4, True, 1.5, slots=960), b"service"),
        (RoutingRecord(GROWN, 2.5), b"routing"),
        (PartitionRecord(3, generation=2, paused=True, node_id="n1", starts=5), b"partition/3"),
        (RebuildRecord(1, 2, RebuildPhase.SWITCHING, 9.0, events=10), b"rebuild/1"),
        (MOVING, b"repartition"),
        (
            msgspec.structs.replace(
                MOVING, phase=RepartitionPhase.FAILED, finished_at=5.0, error="skipped"
            ),
            b"repartition",
        ),
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


def test_a_repartition_record_counts_its_moves_and_versions() -> None:
    assert len(MOVING.moves) == 96 and MOVING.done() == 1 and MOVING.top_version == 9
    assert msgspec.structs.replace(MOVING, moves=()).top_version == 7
    assert RepartitionPhase.GROWING.active and RepartitionPhase.MOVING.active
    assert not RepartitionPhase.DONE.active and not RepartitionPhase.FAILED.active
    _, value = encode_control(MOVING)
    assert len(value) < 8 * 1024  # 96 moves of 5 slots: far below a record's 1 MB


def test_move_states_are_ordered_and_only_requested_ones_are_busy() -> None:
    states = list(MoveState)
    assert [s for s in states if s.busy] == [
        MoveState.REQUESTED,
        MoveState.HANDED_OFF,
        MoveState.INSTALLED,
    ]
    for i, state in enumerate(states):
        assert [state.reached(other) for other in states] == [j <= i for j in range(len(states))]


def test_the_desired_state_keeps_the_latest_repartition() -> None:
    desired = DesiredState()
    assert desired.repartition is None
    done = msgspec.structs.replace(MOVING, phase=RepartitionPhase.DONE)
    for record in (MOVING, ServiceRecord(8, True, slots=960), done):
        desired.apply(decode_control(encode_control(record)[1]))
    assert desired.repartition == done


class PartitionBeforeRepartition(msgspec.Struct, frozen=True, tag="partition"):
    partition: int
    generation: int = 0


OldControlRecord = ServiceBeforeSlots | PartitionBeforeRepartition


def test_records_written_before_repartitions_existed_still_decode() -> None:
    for old, now in (
        (ServiceBeforeSlots(2, True, 1.0), ServiceRecord(2, True, 1.0)),
        (PartitionBeforeRepartition(1, 3), PartitionRecord(1, generation=3)),
    ):
        assert decode_control(msgspec.msgpack.encode(old)) == now


def test_the_published_table_counts_only_once_the_slots_are_assigned() -> None:
    table = RoutingTable.initial(2, 480)
    desired = DesiredState()
    assert desired.table() is None
    desired.apply(RoutingRecord(table, 0.0))
    desired.apply(ServiceRecord(2, True, 0.0, 0))
    assert desired.table() is None, "no slots assigned: Kafka's layout"
    desired.apply(ServiceRecord(2, True, 0.0, 480))
    assert desired.table() == table


@pytest.mark.parametrize(
    ("phase", "to", "serving"),
    [
        (RepartitionPhase.GROWING, 4, 4),  # a shrink under way serves its target
        (RepartitionPhase.MOVING, 4, 4),
        (RepartitionPhase.DONE, 4, 4),
        (RepartitionPhase.FAILED, 4, 8),  # a failed one serves where it started
        (RepartitionPhase.DONE, 12, 8),  # never above the recorded count (not adopted yet)
    ],
)
def test_the_serving_count_is_the_latest_repartitions_target(
    phase: RepartitionPhase, to: int, serving: int
) -> None:
    record = msgspec.structs.replace(
        MOVING, from_partitions=8, to_partitions=to, phase=phase, moves=()
    )
    assert serving_partitions(8, record) == serving
    assert serving_partitions(8, None) == 8


def test_drained_partitions_own_no_slot_at_or_above_the_serving_count() -> None:
    shrinking = msgspec.structs.replace(
        MOVING, from_partitions=8, to_partitions=4, phase=RepartitionPhase.MOVING, moves=()
    )
    table = GROWN  # 8 partitions of 120 slots; empty 6 and 7, and half of 5
    for version, (p, give) in enumerate(((6, 120), (7, 120), (5, 60)), start=100):
        mine = [s for s, o in enumerate(table.owners) if o == p][:give]
        table = table.assign(mine, 0, version)
    assert drained_partitions(8, table, shrinking) == (6, 7)  # 5 still owns slots
    done = msgspec.structs.replace(shrinking, phase=RepartitionPhase.DONE)
    assert drained_partitions(8, table, done) == (6, 7)
    growing = msgspec.structs.replace(shrinking, to_partitions=8)
    assert drained_partitions(8, table, growing) == ()  # to be filled, not drained
    assert drained_partitions(8, None, done) == ()
