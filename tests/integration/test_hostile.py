"""Nothing wedges a partition: hostile records produced straight into the commands topic,
transactions that keep aborting, and a checkpoint outside the commands log, on the real
broker and Ray. After each, a valid command on the same account is answered.

The tests but the last run on the session's shared service (``SharedServices``), each on
accounts of its own and checking the dead letters it caused; the one that blocks a partition
with aborts runs after every other test on it. The last has a service of its own."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import ray
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from actors.audit import read_events, read_topic
from actors.deployment import deploy_coordinator
from actors.kafka import admin_config, bootstrap_config, consumer_config, producer_config
from actors.messages import PartitionStats
from actors.ray_state import lookup_actor, partition_actor
from eventledger.torture.hostile import hostile_records
from ledger import LEDGER, Deposit, OpenAccount
from topology.codec.commands import encode_command
from topology.codes import PoisonCode
from topology.limits import MAX_COMMAND_BYTES
from topology.names import NAMESPACE, Names
from topology.topics import TopicKind, TopicLayout

from .conftest import Service, SharedServices
from .waiting import wait_until

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def service(shared: SharedServices) -> Service:
    """The shared service: victim, ghost-*, abby."""
    return shared.supervised()


def _dead_letters(settings: Any, partition: int) -> list[Any]:
    """The dead-letter records of ``partition``, oldest first."""
    return list(read_topic(settings, TopicKind.DLQ, [partition]))


def test_hostile_records_never_stall_the_partition(service: Service) -> None:
    c = service.client
    settings = service.settings
    layout = TopicLayout.of(settings)
    commands = layout.name(TopicKind.COMMANDS)
    assert c.execute("victim", OpenAccount("EUR")).accepted
    p = c.partition_of("victim")
    dead_before = len(_dead_letters(settings, p))
    raw = Producer({**producer_config(settings), "message.max.bytes": 2_000_000})
    cases = hostile_records("victim", c.reply_lane)
    for i, case in enumerate(cases):
        raw.produce(commands, case.value, b"victim", p, headers=case.headers or None)
        assert raw.flush(30) == 0, case.what
        reply = c.execute("victim", Deposit(10), command_id=f"after-{i}", timeout=30)
        assert reply.accepted, f"the deposit after {case.what!r} was refused: {reply}"

    assert c.reads.view("victim").balance == 10 * len(cases)  # type: ignore[union-attr]
    stats = ray.get(partition_actor(settings.app_id, p).stats.remote())
    assert stats.status == "running" and stats.producer_restarts == 0
    dlq = _dead_letters(settings, p)[dead_before:]
    codes = [dict(m.headers())["eventledger.error.code"].decode() for m in dlq]
    assert codes.count(PoisonCode.TOO_LARGE) == 3  # just under 1 MB, 600 KB and 90 KB ids
    assert all(len(m.value() or b"") <= MAX_COMMAND_BYTES for m in dlq)
    events = [e for e in read_events(settings, LEDGER) if e.envelope.aggregate_id == "victim"]
    executed = [e.envelope.command_id for e in events[1:]]  # after the opening
    assert executed == [f"after-{i}" for i in range(len(cases))]


def test_commands_to_accounts_that_never_existed_leave_no_state(service: Service) -> None:
    c = service.client
    before = {p: ray.get(partition_actor(service.settings.app_id, p).stats.remote())
              for p in range(service.settings.partitions)}  # fmt: skip
    futures = [c.send(f"ghost-{i}", Deposit(1)) for i in range(500)]
    assert all(f.result(60).code == "unknown_account" for f in futures)
    for p, old in before.items():
        now = ray.get(partition_actor(service.settings.app_id, p).stats.remote())
        assert now.aggregates == old.aggregates


def _set_topic_config(bootstrap: str, topic: str, name: str, value: str | None) -> None:
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry(name, value or "", incremental_operation=op)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin = AdminClient(bootstrap_config(bootstrap))  # alive until its futures resolve
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def _stats_when(settings: Any, partition: int, status: str) -> PartitionStats:
    """The partition's stats once its status is ``status``."""

    def reached() -> PartitionStats | None:
        stats: PartitionStats = ray.get(partition_actor(settings.app_id, partition).stats.remote())
        return stats if stats.status == status else None

    return wait_until(reached, 120, f"partition {partition} {status}", interval=0.2)


@pytest.mark.shared_last  # blocks a partition
def test_a_repeating_abort_sets_the_record_aside_then_blocks_and_unblocks(
    service: Service,
) -> None:
    c = service.client
    settings = service.settings
    assert c.execute("abby", OpenAccount("EUR")).accepted
    p = c.partition_of("abby")
    dead_before = len(_dead_letters(settings, p))
    events = TopicLayout.of(settings).name(TopicKind.EVENTS)
    # Room for the transaction markers (about 80 bytes: smaller, and not even an abort could
    # complete), not for a batch holding an event.
    _set_topic_config(settings.bootstrap_servers, events, "max.message.bytes", "100")
    try:
        first = c.execute("abby", Deposit(5), command_id="too-big-now", timeout=120)
        assert (first.accepted, first.code) == (False, PoisonCode.UNPROCESSABLE)
        assert "too large" in first.message.lower()

        answered: list[Any] = []
        second = threading.Thread(
            target=lambda: answered.append(
                c.execute("abby", Deposit(7), command_id="waits", timeout=300)
            )
        )
        second.start()
        stats = _stats_when(settings, p, "blocked")
        assert "every transaction aborts" in stats.error
        assert "eventledger unblock" in stats.error
    finally:
        _set_topic_config(settings.bootstrap_servers, events, "max.message.bytes", None)
    assert ray.get(partition_actor(settings.app_id, p).unblock.remote()) == "running"
    second.join(300)
    assert answered and answered[0].accepted
    assert c.reads.view("abby").balance == 7  # type: ignore[union-attr]
    dead = _dead_letters(settings, p)[dead_before:]
    assert [dict(m.headers())["eventledger.error.code"] for m in dead] == [b"unprocessable"]


def test_a_checkpoint_outside_the_log_blocks_until_an_operator_says_where(
    bare_service: Service,
) -> None:
    """Unsupervised: the test removes one actor and deletes the commands it had not read,
    then deploys the service again (the new coordinator starts the missing actor)."""
    service = bare_service
    c = service.client
    settings = service.settings
    account = next(a for a in (f"o-{i}" for i in range(100)) if c.partition_of(a) == 0)
    assert c.execute(account, OpenAccount("EUR")).accepted
    assert c.execute(account, Deposit(3)).accepted
    handle = partition_actor(settings.app_id, 0)
    ray.get(handle.stop.remote())
    ray.kill(handle, no_restart=True)
    name = Names.of(settings).partition_actor(0)
    wait_until(lambda: lookup_actor(name, NAMESPACE) is None, 60, "the actor gone")
    commands = TopicLayout.of(settings).name(TopicKind.COMMANDS)
    raw = Producer(producer_config(settings))
    for i in range(3):  # commands that retention will delete before they are processed
        value = encode_command(account, Deposit(100), command_id=f"lost-{i}")
        raw.produce(commands, value, account.encode(), 0)
    assert raw.flush(30) == 0
    consumer = Consumer(consumer_config(settings, group_id="probe"))
    _, end = consumer.get_watermark_offsets(TopicPartition(commands, 0), 10)
    consumer.close()
    admin = AdminClient(admin_config(settings))
    [deleted] = admin.delete_records([TopicPartition(commands, 0, end)]).values()
    deleted.result(30)

    deploy_coordinator(settings, LEDGER, timeout=120)
    handle = partition_actor(settings.app_id, 0)
    stats = ray.get(handle.stats.remote())
    assert stats.status == "blocked"
    assert f"holds offsets {end} to {end}" in stats.error
    assert "--from-offset" in stats.error
    assert ray.get(handle.unblock.remote(end)) == "running"
    assert c.execute(account, Deposit(4)).accepted
    assert c.reads.view(account).balance == 7  # type: ignore[union-attr]
    executed = {e.envelope.command_id for e in read_events(settings, LEDGER)}
    assert not any(cid.startswith("lost-") for cid in executed)
