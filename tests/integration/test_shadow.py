"""The shadow rebuild on the real broker, without Ray: a rebuild that crashes halfway
resumes from its last checkpoint, and what it hands over is the fold of the events."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest

from actors.admin import ensure_specs, ensure_topics
from actors.audit import fold_events, read_events
from actors.client import LedgerClient
from actors.messages import RestoredFrom
from actors.partition import PartitionWorker
from actors.shadow import ShadowRebuild
from ledger.aggregate import LEDGER
from ledger.commands import Deposit, OpenAccount
from tests.integration.waiting import wait_until
from topology.codec.aggregate import Codec
from topology.settings import Settings
from topology.topics import TopicLayout

LEDGER_CODEC = Codec(LEDGER)


def test_a_crashed_rebuild_resumes_from_its_checkpoint(
    bootstrap: str, app_id: str, state_dir: str
) -> None:
    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=1, state_dir=state_dir, environ={}
    )
    layout = TopicLayout(app_id, 1)
    ensure_topics(bootstrap, layout)
    ensure_specs(bootstrap, [layout.snapshot_spec(1)])
    worker = PartitionWorker(settings, 0, LEDGER)
    try:
        with LedgerClient(settings, timeout=60) as client:
            accounts = [f"s-{i}" for i in range(20)]
            for f in [client.send(a, OpenAccount("EUR")) for a in accounts]:
                assert f.result(60).accepted
            moves = [client.send(accounts[i % 20], Deposit(1 + i)) for i in range(300)]
            assert all(f.result(60).accepted for f in moves)
    finally:
        worker.stop()  # the live writer is quiet from here on, as during a switch's pause

    first = ShadowRebuild(settings, 0, 1, LEDGER, read_limit=60, start=False)
    assert first.resumed_from == 0

    def replayed_120() -> bool:  # a read takes what the consumer has fetched, at most 60
        assert first.replay_some() <= 60
        return first.replayed >= 120

    wait_until(replayed_120, 30, "the first rebuild to replay 120 of the 320 events")
    replayed = first.replayed
    assert replayed < 320
    first.checkpoint()
    reached = first._tail.position
    first.stop()  # crashes: no finish, no hand-over

    second = ShadowRebuild(settings, 0, 1, LEDGER, start=False)  # fences the first one's producer
    assert second.resumed_from == reached > 0
    # a live actor's batch committed past the readable end (its commit markers not landed):
    # the shadow waits for it, and hands over nothing short of it
    end = second._tail.end()
    with pytest.raises(TimeoutError, match=f"of {end + 1}"):
        second.finish(at_least=end + 1, timeout=1.0)
    handover = second.finish(at_least=end)
    assert handover.position == end
    assert handover.replayed == 320 - replayed, "only the events after the checkpoint"

    folded = fold_events(settings, LEDGER)
    rebuilt = {
        k.decode(): LEDGER_CODEC.snapshots.decode(v).slot for k, v in handover.snapshots.items()
    }
    assert {k: s.state for k, s in rebuilt.items()} == folded
    events = Counter(e.envelope.aggregate_id for e in read_events(settings, LEDGER))
    assert {k: s.version for k, s in rebuilt.items()} == events


def test_snapshots_of_another_state_schema_are_never_loaded(
    bootstrap: str, app_id: str, state_dir: str
) -> None:
    from tests.integration.schema_bump import LEDGER_V2

    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=1, state_dir=state_dir, environ={}
    )
    ensure_topics(bootstrap, TopicLayout(app_id, 1))
    old = PartitionWorker(settings, 0, LEDGER)  # state schema 2 writes the snapshots
    try:
        with LedgerClient(settings, timeout=60) as client:
            assert client.execute("v", OpenAccount("EUR")).accepted
            assert client.execute("v", Deposit(5)).accepted
    finally:
        old.stop()
    new = PartitionWorker(settings, 0, LEDGER_V2)  # schema 4: folds the events
    try:
        assert new.stats().restored_from is RestoredFrom.EVENTS
        assert msgspec.to_builtins(new.get("v")) == {
            "status": "open", "currency": "EUR", "balance": 5, "overdraft_limit": 0,
            "version": 2, "pending_debits": 0, "pending_credits": 0, "available": 5,
            "in_flight": [],
        }  # fmt: skip
        assert new.committed.states["v"].state.movements == 1
        with LedgerClient(settings, timeout=60) as client:
            assert client.execute("v", Deposit(7)).version == 3
        assert new.committed.states["v"].state.movements == 2
    finally:
        new.stop()
