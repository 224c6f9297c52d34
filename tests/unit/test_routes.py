"""The routing a client or member knows (``actors.routes``): learnt from the control
records, the table merged forward only, the count grown only, and with no slots exactly
Kafka's layout. Fake messages stand in for the consumer's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actors.routes import Routes, learn
from topology.control import DesiredState, RoutingRecord, ServiceRecord, encode_control
from topology.partitioner import partition_for
from topology.routing import RoutingTable

V0 = RoutingTable.initial(2, 480)


@dataclass
class Msg:
    """What ``learn`` reads of a consumer's message."""

    payload: bytes | None
    failure: Any = None

    def error(self) -> Any:
        return self.failure

    def value(self) -> bytes | None:
        return self.payload

    def offset(self) -> int:
        return 7


def _slotted(partitions: int = 2) -> DesiredState:
    desired = DesiredState()
    desired.apply(ServiceRecord(partitions, True, 0.0, slots=480))
    desired.apply(RoutingRecord(V0))
    return desired


@given(st.binary(max_size=30))
def test_with_no_slots_the_router_is_kafkas_layout(key: bytes) -> None:
    desired = DesiredState()
    desired.apply(ServiceRecord(3, True))
    routes = Routes.of(desired, 2)  # the recorded count wins over the configured one
    assert routes.table is None and routes.partitions == 3
    assert routes.router.partition_of(key) == partition_for(key, 3)


@given(st.binary(max_size=30))
def test_version_0_routes_as_before_and_growth_does_not_move_a_key(key: bytes) -> None:
    routes = Routes.of(_slotted(), 2)
    assert routes.table == V0
    assert routes.apply(ServiceRecord(4, True, 1.0, slots=480)) == 2
    assert routes.partitions == 4
    assert routes.router.partition_of(key) == partition_for(key, 2)


def test_a_newer_table_is_merged_and_an_older_one_changes_nothing() -> None:
    routes = Routes.of(_slotted(), 2)
    moved = V0.assign([3], 2, 1)
    assert routes.apply(RoutingRecord(moved)) is None
    assert routes.table == moved and routes.table.version == 1
    assert not routes.merge(V0)  # read again, or out of order
    assert routes.table == moved
    other = RoutingTable.initial(2, 960).assign([5], 1, 9)
    assert not routes.merge(other)  # another S: ignored
    assert routes.table == moved


def test_a_service_record_raises_the_count_and_never_lowers_it() -> None:
    routes = Routes(2)
    assert routes.apply(ServiceRecord(4, True, slots=480)) == 2
    assert routes.apply(ServiceRecord(4, True, slots=480)) is None
    assert routes.apply(ServiceRecord(3, True, slots=480)) is None
    assert routes.partitions == 4 and routes.table is None


def test_the_first_table_fixes_the_slots_whatever_the_order_of_records() -> None:
    routes = Routes(2)
    assert routes.merge(V0)
    assert routes.apply(ServiceRecord(2, True, slots=480)) is None
    assert routes.table == V0


def test_learn_applies_a_record_and_skips_errors_and_garbage() -> None:
    routes = Routes(2)
    _, grown = encode_control(ServiceRecord(4, True, slots=480))
    assert learn(routes, Msg(grown)) == 2
    _, table = encode_control(RoutingRecord(V0.assign([1], 3, 2)))
    assert learn(routes, Msg(table)) is None and routes.table is not None
    assert routes.table.owners[1] == 3
    for skipped in (Msg(None), Msg(b"\x00garbage"), Msg(grown, failure=_Failure())):
        assert learn(routes, skipped) is None
    assert routes.partitions == 4


class _Failure:
    def str(self) -> str:
        return "broker down"
