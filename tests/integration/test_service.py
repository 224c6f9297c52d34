"""The service end to end on the real broker and real Ray: replies, events, snapshots,
state, idempotency, optimistic concurrency, poison input, restarts.

The tests but the fencing one run on the session's shared service (``SharedServices``), each
on accounts of its own: each checks money on its accounts and the dead letters it caused, and
that every account's view is the fold of its events; the one that kills an actor runs after
every other test on it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import msgspec
import pytest
import ray
from confluent_kafka import Producer

from actors.audit import fold_events, read_events, read_topic
from actors.kafka import producer_config
from actors.ray_state import partition_actor
from actors.reads import PositionNotReachedError
from eventledger.workload import money_moved
from ledger.aggregate import LEDGER
from ledger.commands import Deposit, OpenAccount, Withdraw
from ledger.state import AccountView
from tests.integration.conftest import Service, SharedServices
from tests.integration.traffic import installed_views
from tests.integration.waiting import wait_until
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.codec.keys import TOUCH_KEY
from topology.envelopes import CommandEnvelope, Position
from topology.flows import FLOWS_KEY
from topology.partitioner import partition_for
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

LEDGER_CODEC = Codec(LEDGER)


@pytest.fixture
def service(shared: SharedServices) -> Service:
    """The shared service: alice, bob and carol, dana, erin, fred, acct-*, m-*."""
    return shared.supervised()


def _assert_money_conserved(service: Service, accounts: list[str], expected_total: int) -> None:
    """The test's ``accounts`` hold ``expected_total`` in the actors' views and in the fold of
    the events, and every account of the service has the balance its events fold to."""
    views: dict[str, AccountView] = installed_views(service.settings)
    folded = fold_events(service.settings, LEDGER)
    assert sum(views[a].balance for a in accounts if a in views) == expected_total
    assert sum(folded[a].balance for a in accounts if a in folded) == expected_total
    assert {k: v.balance for k, v in views.items()} == {k: s.balance for k, s in folded.items()}


def test_commands_flow_to_replies_events_snapshots_and_state(service: Service) -> None:
    c = service.client
    opened = c.execute("alice", OpenAccount("EUR"))
    assert opened.accepted and opened.version == 1
    assert c.execute("bob", OpenAccount("EUR", overdraft_limit=500)).accepted
    assert c.execute("alice", Deposit(1_000)).version == 2
    assert c.execute("alice", Withdraw(300)).version == 3
    refused = c.execute("alice", Withdraw(10_000))
    assert (refused.accepted, refused.code, refused.version) == (False, "insufficient_funds", 3)
    assert c.execute("bob", Withdraw(500)).accepted
    assert c.execute("carol", Deposit(5)).code == "unknown_account"

    assert msgspec.to_builtins(c.reads.view("alice")) == {
        "status": "open", "currency": "EUR", "balance": 700, "overdraft_limit": 0, "version": 3,
        "pending_debits": 0, "pending_credits": 0, "available": 700, "in_flight": [],
    }  # fmt: skip
    assert c.reads.view("bob").balance == -500  # type: ignore[union-attr]
    assert c.reads.view("carol") is None

    events = list(read_events(service.settings, LEDGER))
    assert [(e.envelope.aggregate_id, e.envelope.type) for e in events if
            e.envelope.aggregate_id == "alice"] == [
        ("alice", "AccountOpened"), ("alice", "Deposited"), ("alice", "Withdrawn"),
    ]  # fmt: skip
    assert all(e.partition == partition_for(e.envelope.aggregate_id.encode(), 2) for e in events)

    last_snapshot: dict[str, Any] = {}
    checkpoints: dict[int, int] = {}
    for msg in read_topic(service.settings, TopicKind.SNAPSHOTS):
        if msg.key() == CHECKPOINT_KEY:
            checkpoints[msg.partition()] = decode_checkpoint(msg.value()).next_offset
        elif msg.key() != TOUCH_KEY:
            last_snapshot[msg.key().decode()] = LEDGER_CODEC.snapshots.decode(msg.value())
    # Each partition's last checkpoint is the command offset its actor committed.
    stats = ray.get([h.stats.remote() for h in service.handles])
    assert checkpoints == {s.partition: s.committed_offset for s in stats}
    assert last_snapshot["alice"].slot.version == 3
    assert last_snapshot["alice"].slot.state.balance == 700
    last_view: dict[str, Any] = {}
    for msg in read_topic(service.settings, TopicKind.STATE):
        if msg.key() != FLOWS_KEY:  # a partition's money flows, not an account's view
            last_view[msg.key().decode()] = LEDGER_CODEC.views.decode(msg.value())
    assert last_view["bob"].balance == -500
    _assert_money_conserved(service, ["alice", "bob", "carol"], 700 - 500)


def test_duplicate_command_ids_and_version_conflicts(service: Service) -> None:
    c = service.client
    assert c.execute("dana", OpenAccount("EUR")).accepted
    first = c.execute("dana", Deposit(100), command_id="dep-1")
    again = c.execute("dana", Deposit(100), command_id="dep-1")
    assert first == again and first.accepted and first.version == 2

    stale = c.execute("dana", Deposit(50), expected_version=1)
    assert (stale.accepted, stale.code) == (False, "version_conflict")
    fresh = c.execute("dana", Deposit(50), expected_version=2)
    assert fresh.accepted and fresh.version == 3

    events = [e for e in read_events(service.settings, LEDGER) if e.envelope.aggregate_id == "dana"]
    assert Counter(e.envelope.command_id for e in events)["dep-1"] == 1
    assert [e.envelope.sequence for e in events] == [1, 2, 3]
    _assert_money_conserved(service, ["dana"], 150)


def test_a_reply_carries_its_position_and_a_read_asks_for_at_least_it(service: Service) -> None:
    c = service.client
    p = partition_for(b"erin", service.settings.partitions)
    opened = c.execute("erin", OpenAccount("EUR"))
    deposit = c.execute("erin", Deposit(250), command_id="erin-dep")
    assert opened.position is not None and deposit.position is not None
    assert deposit.position.partition == p and deposit.position.seq > opened.position.seq
    # the position is the commit sequence the partition checkpointed with the deposit
    seqs = {
        msg.partition(): decode_checkpoint(msg.value()).seq
        for msg in read_topic(service.settings, TopicKind.SNAPSHOTS)
        if msg.key() == CHECKPOINT_KEY
    }
    assert seqs[p] == deposit.position.seq
    # read-your-writes on the writer, by the account's version or by the partition's position
    by_version = c.reads.read("erin", min_version=deposit.version)
    by_position = c.reads.read("erin", at_least=deposit.position)
    for found in (by_version, by_position):
        assert found.view is not None and found.view.balance == 250  # type: ignore[attr-defined]
        assert found.version == deposit.version and found.position == deposit.position
    # bounds the partition has not reached: refused after the wait, saying where it stands
    beyond = Position(p, deposit.position.seq + 1_000)
    for bounds in ({"at_least": beyond}, {"min_version": deposit.version + 1}):
        with pytest.raises(PositionNotReachedError) as caught:
            c.reads.read("erin", **bounds)  # type: ignore[arg-type]
        assert (caught.value.version, caught.value.position) == (2, deposit.position)
    with pytest.raises(ValueError, match="partition"):
        c.reads.read("erin", at_least=Position(1 - p, 1))
    # a retry answered from the id memory (in a batch of its own) repeats the first position
    assert c.execute("erin", Deposit(250), command_id="erin-dep") == deposit
    assert c.reads.read("erin").position.seq == deposit.position.seq + 1
    _assert_money_conserved(service, ["erin"], 250)


def test_poison_input_goes_to_dlq_and_the_partition_keeps_going(service: Service) -> None:
    c = service.client
    settings = service.settings
    layout = TopicLayout.of(settings)
    assert c.execute("fred", OpenAccount("EUR")).accepted
    p = c.partition_of("fred")
    dead_before = len(list(read_topic(settings, TopicKind.DLQ, [p])))
    dlq_before = ray.get(partition_actor(settings.app_id, p).stats.remote()).dlq
    raw = Producer(producer_config(settings))
    commands = layout.name(TopicKind.COMMANDS)
    bad_type = CommandEnvelope(
        "bad-type", "fred", "Teleport", msgspec.Raw(msgspec.msgpack.encode({})),
        reply_to=c.reply_lane,
    )  # fmt: skip
    bad_payload = CommandEnvelope(
        "bad-payload", "fred", "Deposit", msgspec.Raw(msgspec.msgpack.encode({"amount": "x"})),
        reply_to=c.reply_lane,
    )  # fmt: skip
    wrong_key = CommandEnvelope(
        "wrong-key", "someone-else", "Deposit",
        msgspec.Raw(msgspec.msgpack.encode({"type": "Deposit", "amount": 1})),
        reply_to=c.reply_lane,
    )  # fmt: skip
    raw.produce(commands, b"\xff\x00garbage", b"fred", p)
    for env in (bad_type, bad_payload, wrong_key):
        raw.produce(commands, msgspec.msgpack.encode(env), b"fred", p)
    raw.flush(10)
    futures = {cid: c.send("fred", Deposit(10)) for cid in ("g1", "g2", "g3")}
    assert all(f.result(60).accepted for f in futures.values())

    dlq = list(read_topic(settings, TopicKind.DLQ, [p]))[dead_before:]
    assert len(dlq) == 4
    for msg in dlq:
        headers = dict(msg.headers())
        assert headers["eventledger.error.topic"] == commands.encode()
        assert "eventledger.error.code" in headers
    codes = Counter(dict(m.headers())["eventledger.error.code"].decode() for m in dlq)
    assert codes == Counter(
        {"malformed": 1, "unknown_command_type": 1, "invalid_payload": 1, "key_mismatch": 1}
    )
    assert c.reads.view("fred").balance == 30  # type: ignore[union-attr]
    stats = ray.get(partition_actor(settings.app_id, p).stats.remote())
    assert stats.status == "running" and stats.dlq == dlq_before + 4
    _assert_money_conserved(service, ["fred"], 30)


def test_second_worker_fences_the_first(bare_service: Service, settings: Settings) -> None:
    """Without a coordinator: it would replace the fenced actor, fencing the successor."""
    from actors.partition import PartitionWorker

    c = bare_service.client
    victim_partition = 0
    account = next(a for a in (f"z-{i}" for i in range(100)) if c.partition_of(a) == 0)
    assert c.execute(account, OpenAccount("EUR")).accepted
    successor = PartitionWorker(settings, victim_partition, LEDGER)  # fences the actor's producer
    try:
        assert c.execute(account, Deposit(40), timeout=60).accepted
        old = partition_actor(settings.app_id, victim_partition)

        def fenced() -> bool:
            if ray.get(old.stats.remote()).status == "fenced":
                return True
            c.send(account, Deposit(0))  # gives the old writer something to try
            return False

        wait_until(fenced, 30, "the old writer fenced", interval=0.5)
        assert successor.get(account).balance == 40
    finally:
        successor.stop()
    events = [e for e in read_events(settings, LEDGER) if e.envelope.aggregate_id == account]
    assert [e.envelope.sequence for e in events] == [1, 2]
    assert sum(1 for _ in events) == len({e.envelope.command_id for e in events})


def test_unique_ids_across_many_accounts_conserve_money(service: Service) -> None:
    c = service.client
    ids = [f"m-{uuid.uuid4().hex[:6]}" for _ in range(50)]
    for f in [c.send(a, OpenAccount("EUR", overdraft_limit=100)) for a in ids]:
        assert f.result(60).accepted
    commands = [(a, Deposit(7) if i % 2 else Withdraw(60)) for i, a in enumerate(ids * 4)]
    futures = [(cmd, c.send(a, cmd)) for a, cmd in commands]
    total = sum(money_moved(cmd) for cmd, f in futures if f.result(60).accepted)
    _assert_money_conserved(service, ids, total)


@pytest.mark.slow  # 10 s: the fault suite's short form kills actors by default
@pytest.mark.shared_last  # kills an actor
def test_killed_actor_restores_and_loses_or_duplicates_nothing(service: Service) -> None:
    c = service.client
    accounts = [f"acct-{i}" for i in range(20)]
    for f in [c.send(a, OpenAccount("EUR")) for a in accounts]:
        assert f.result(60).accepted
    victim = partition_actor(service.settings.app_id, 0)
    sent: dict[str, tuple[str, Any]] = {}
    replies: dict[str, Any] = {}
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            account = accounts[i % len(accounts)]
            command = Deposit(10) if i % 3 else Withdraw(25)
            cid = f"cmd-{i}"
            sent[cid] = (account, command)
            for _ in range(10):  # a retry with the same id is safe
                try:
                    replies[cid] = c.execute(account, command, command_id=cid, timeout=10)
                    break
                except TimeoutError:
                    continue
            i += 1

    streamer = threading.Thread(target=stream)
    streamer.start()
    wait_until(lambda: len(replies) >= 50, 60, "the stream under way")  # killed mid-stream
    ray.kill(victim, no_restart=False)
    streamer.join(300)
    stop.set()
    assert set(replies) == set(sent), "every command got a reply"

    accepted = {cid for cid, r in replies.items() if r.accepted}
    events = list(read_events(service.settings, LEDGER))
    by_command = Counter(e.envelope.command_id for e in events)
    assert {cid for cid in by_command if cid.startswith("cmd-")} == accepted
    assert all(by_command[cid] == 1 for cid in accepted), "each accepted command exactly once"
    stats = ray.get(partition_actor(service.settings.app_id, 0).stats.remote())
    assert stats.status == "running"
    # positions only grow across the restore, and the restored partition stands at least at
    # the last (a retry answered from memory commits a batch but repeats its first position)
    on_0 = [a for a in accounts if partition_for(a.encode(), service.settings.partitions) == 0]
    seqs = [
        r.position.seq
        for cid, r in sorted(replies.items(), key=lambda kv: int(kv[0].split("-")[1]))
        if r.position is not None and r.position.partition == 0
    ]
    assert len(seqs) > 50 and seqs == sorted(seqs)
    at = c.reads.read(on_0[0]).position
    assert at.partition == 0 and at.seq >= seqs[-1]
    _assert_money_conserved(service, accounts, sum(money_moved(sent[cid][1]) for cid in accepted))
