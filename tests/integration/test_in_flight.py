"""Money in flight for operators, on the real broker and Ray: a transfer whose target's
partition actor is stopped (SIGSTOP) is listed in flight with its amount and age and no lost
leg, a settlement is refused as not lost, and it leaves the list once the target runs; a
credit leg that genuinely keeps aborting (the events topic takes no event for a while) is set
aside, listed as lost, and settled once by an operator, its money back at the source.

The two tests take turns on the session's shared service without a coordinator (which would
replace the stopped actor; ``SharedServices.bare``), each on accounts of its own; each leaves
its actors running."""

from __future__ import annotations

import os
import signal
import time

import pytest
import ray
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from actors.audit import read_events
from actors.kafka import admin_config
from actors.ray_state import partition_actor
from eventledger.transfers import (
    InFlightTransfer,
    SettlementError,
    SettlementRefusal,
    in_flight,
    settle,
)
from ledger import LEDGER, Transfer
from ledger.events import TransferForced
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

from .conftest import Service, SharedServices
from .test_transfers import assert_money_conserved, balance, funded, on_partition
from .waiting import wait_until

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def bare_service(shared: SharedServices) -> Service:
    """The shared service without a coordinator: src-* and dst-*, lsrc-* and ldst-*."""
    return shared.bare()


def _pid(_actor: object) -> int:
    return os.getpid()


def stop_partition(settings: Settings, partition: int) -> int:
    """SIGSTOP partition `partition`'s actor process; its pid (SIGCONT it)."""
    handle = partition_actor(settings.app_id, partition)
    pid: int = ray.get(handle.__ray_call__.remote(_pid), timeout=30)
    os.kill(pid, signal.SIGSTOP)
    return pid


def listed(
    settings: Settings, source: str, transfer_id: str, now_ms: int | None = None
) -> InFlightTransfer | None:
    found = in_flight(settings, now_ms=now_ms)
    rows = [r for r in found if (r.source, r.transfer_id) == (source, transfer_id)]
    assert len(rows) <= 1
    return rows[0] if rows else None


def _set_events_max_bytes(settings: Settings, value: str | None) -> None:
    topic = TopicLayout.of(settings).name(TopicKind.EVENTS)
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry("max.message.bytes", value or "", incremental_operation=op)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin = AdminClient(admin_config(settings))
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_a_transfer_to_a_stopped_partition_is_in_flight_not_lost_until_it_lands(
    bare_service: Service,
) -> None:
    c, s = bare_service.client, bare_service.settings
    a, b = on_partition(s, 0, "src"), on_partition(s, 1, "dst")
    funded(c, a, 100)
    funded(c, b, 0)
    assert in_flight(s) == []
    pid = stop_partition(s, 1)
    try:
        started_ms = int(time.time() * 1000)
        reply = c.send(a, Transfer(b, 40), command_id="slow-1")
        row = wait_until(lambda: listed(s, a, "slow-1"), 120, "the debit listed", interval=0.5)
        assert (row.target, row.amount, row.lost) == (b, 40, ())
        assert started_ms <= row.since_ms <= started_ms + row.age_ms + 1_000
        second_later = row.since_ms + row.age_ms + 1_000  # in_flight's clock, stepped
        later = listed(s, a, "slow-1", now_ms=second_later)
        assert later is not None and later.age_ms == row.age_ms + 1_000, "its age grows"
        assert in_flight(s, older_than_ms=later.age_ms + 60_000, now_ms=second_later) == []
        with pytest.raises(SettlementError, match=r"in flight, not lost.*partition 1") as refused:
            settle(s, source=a, transfer_id="slow-1", refund=True, operator="ops", reason="test")
        assert refused.value.code is SettlementRefusal.NOT_LOST
        with pytest.raises(SettlementError) as unknown:
            settle(s, source=b, transfer_id="slow-1", refund=True, operator="ops", reason="test")
        assert unknown.value.code is SettlementRefusal.UNKNOWN_TRANSFER
    finally:
        os.kill(pid, signal.SIGCONT)
    assert reply.result(120).accepted
    wait_until(lambda: in_flight(s) == [], 120, "the transfer off the list", interval=0.5)
    assert (balance(c, a), balance(c, b)) == (60, 40)
    assert_money_conserved(bare_service, [a, b])


def test_a_lost_credit_leg_is_listed_and_refunded_once_by_an_operator(
    bare_service: Service,
) -> None:
    c, s = bare_service.client, bare_service.settings
    a, b = on_partition(s, 0, "lsrc"), on_partition(s, 1, "ldst")
    funded(c, a, 100)
    funded(c, b, 0)
    pid = stop_partition(s, 1)
    try:
        reply = c.send(a, Transfer(b, 40), command_id="lost-1")
        wait_until(lambda: listed(s, a, "lost-1"), 120, "the debit listed", interval=0.5)
        # Room for the transaction markers, not for an event: the credit keeps aborting.
        _set_events_max_bytes(s, "100")
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        row = wait_until(
            lambda: r if (r := listed(s, a, "lost-1")) is not None and r.lost else None,
            120,
            "the credit leg set aside",
            interval=0.5,
        )
    finally:
        _set_events_max_bytes(s, None)
    (leg,) = row.lost
    assert (leg.leg, leg.aggregate, leg.partition, leg.source) == ("CreditTransfer", b, 1, a)
    assert (balance(c, a), balance(c, b)) == (60, 0)

    done = settle(s, source=a, transfer_id="lost-1", refund=True, operator="ops", reason="test")
    assert done.settled and done.legs == (leg,)
    final = reply.result(120)
    assert (final.accepted, final.code) == (False, "refused_by_operator")
    wait_until(lambda: in_flight(s) == [], 120, "the transfer off the list", interval=0.5)
    with pytest.raises(SettlementError) as again:
        settle(s, source=a, transfer_id="lost-1", refund=True, operator="ops", reason="twice")
    assert again.value.code is SettlementRefusal.UNKNOWN_TRANSFER
    assert (balance(c, a), balance(c, b)) == (100, 0)
    forced = [e.event for e in read_events(s, LEDGER) if isinstance(e.event, TransferForced)]
    assert forced == [TransferForced("lost-1", a, "refund", "ops", "test")]
    kinds = assert_money_conserved(bare_service, [a, b])
    assert kinds["TransferReversed"] == 1 and kinds["TransferCredited"] == 0
