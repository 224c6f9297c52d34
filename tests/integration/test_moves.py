"""A repartition's move on the real broker (docs/design-repartition.md, stages 3 and 4),
with no driver yet: a 2-partition application whose slots are assigned (`ServiceRecord.slots`
and the routing table at version 0, written to the control topic before it is deployed)
gets a `MoveSlots` request produced by hand to `internal[0]` while traffic flows. Partition
0 hands the slots off, partition 1 installs them, and the traffic's clients, which route by
Kafka's layout (the old route), keep sending the moved accounts' commands to partition 0,
which forwards them. Checked: both slot records show the move, some commands were
forwarded, every command got exactly one reply and its events are in the log once, with
sequences unbroken across the move (`assert_exactly_once_and_money_conserved`: the fold of
the events across partitions, markers followed, equals the actors' views), the moved
accounts live on partition 1 only, and money is conserved, per partition (the flows
identity with the moved terms) and in all."""

from __future__ import annotations

import pytest
import ray
from confluent_kafka import Producer

from actors.admin import ensure_topics
from actors.audit import read_named_topic
from actors.control_store import ControlWriter
from actors.ray_state import partition_actor
from ledger import LEDGER
from tests.integration.conftest import running
from tests.integration.traffic import Traffic, assert_exactly_once_and_money_conserved
from tests.integration.waiting import wait_until
from topology.codec.state import decode_flows
from topology.control import RoutingRecord, ServiceRecord
from topology.flows import FLOWS_KEY, Flows, wrapped
from topology.moves import MoveSlots, RecordKind, decode_slot_record, encode_move, kind_header
from topology.routing import RoutingTable
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

# The slow group: test_repartition.py runs moves end to end in the default run.
pytestmark = pytest.mark.slow


def test_a_move_hands_slots_off_installs_them_and_forwards_the_old_route(
    settings: Settings, ray_local: None
) -> None:
    slots = 240 * settings.partitions
    table = RoutingTable.initial(settings.partitions, slots)
    layout = TopicLayout.of(settings)
    ensure_topics(settings, layout)
    control = ControlWriter(settings)
    control.write(ServiceRecord(settings.partitions, True, 0.0, slots), RoutingRecord(table, 0.0))
    control.writer.close()
    with running(settings) as service:
        traffic = Traffic(service.client, "mv").start()
        traffic.wait_for(60)
        on_zero = [a for a in traffic.accounts if table.owner_of(a.encode()) == 0]
        group = tuple(sorted({table.slot_of(a.encode()) for a in on_zero[:3]}))
        moving = [a for a in traffic.accounts if table.slot_of(a.encode()) in group]
        move = MoveSlots("move-1", 1, group, 1)
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
        producer.produce(
            layout.name(TopicKind.INTERNAL),
            encode_move(move),
            move.move_id.encode(),
            partition=0,
            headers=[kind_header(RecordKind.MOVE)],
        )
        assert producer.flush(30) == 0

        def stats() -> list[object]:
            handles = [partition_actor(settings.app_id, p) for p in range(2)]
            return ray.get([h.stats.remote() for h in handles], timeout=60)

        def moved() -> bool:
            zero, one = stats()
            return (
                zero.slot_record is not None  # type: ignore[attr-defined]
                and one.slot_record is not None  # type: ignore[attr-defined]
                and decode_slot_record(zero.slot_record).gave(group, 1)  # type: ignore[attr-defined]
                and decode_slot_record(one.slot_record).holds(group, 1)  # type: ignore[attr-defined]
            )

        wait_until(moved, 120, "partition 0 to hand the slots off and partition 1 to take them")
        traffic.wait_for(120)  # the moved accounts' commands go on by the old route
        traffic.stop()

        folded = assert_exactly_once_and_money_conserved(settings, [traffic], LEDGER)
        expected = sum(s.balance for s in folded.values())
        held = {
            p: set(ray.get(partition_actor(settings.app_id, p).views.remote(), timeout=60))
            for p in range(2)
        }
        assert set(moving) <= held[1] and not set(moving) & held[0]
        flows: dict[int, Flows] = {}
        for msg in read_named_topic(settings, layout.name(TopicKind.STATE)):
            if msg.key() == FLOWS_KEY:
                flows[msg.partition()] = decode_flows(msg.value())
        for p in range(2):
            mine = [ray.get(partition_actor(settings.app_id, p).views.remote(), timeout=60)]
            total = wrapped(sum(v.balance for part in mine for v in part.values()))
            assert flows[p].balance() == total, f"partition {p}: the flows identity"
        assert flows[0].moved_out == {1: flows[1].moved_in[0]}
        deposited = sum(f.deposited - f.withdrawn for f in flows.values())
        assert deposited == expected
        forwarded = sum(s.forwarded for s in stats())  # type: ignore[attr-defined]
        assert forwarded > 0, "the old route's commands were forwarded"
        print(  # the numbers, for a run with -rP
            f"moved {len(moving)} accounts (slots {group}); {traffic.count} replies; "
            f"{forwarded} forwarded; moved_out {flows[0].moved_out}; balances {expected}"
        )
