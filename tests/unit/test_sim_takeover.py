"""The simulator's takeovers: the in-memory logs fence as Kafka's transactional ids do, a
standby is promoted as the actor's promotion does, a zombie writer is refused, and the
checker finds the takeover bugs when they are planted (fencing that does not fence, a
promotion that does not catch up, a standby whose fold drops what a checkpoint carries)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors.committed import Committed
from eventledger.sim.logs import FencedError, Logs
from eventledger.sim.ops import Batch, Follow, Op, Send, Takeover, Wake
from eventledger.sim.run import Outcome, config_for, run_seed, run_trace, shrink
from eventledger.sim.standby import SimStandby
from eventledger.sim.world import SimConfig
from ledger.commands import Deposit, OpenAccount, Transfer
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.envelopes import Checkpoint
from topology.follow import Batch as Batch_
from topology.follow import Batches
from topology.topics import TopicKind

CONFIG = SimConfig(partitions=3, reply_lanes=2, skews_ms=(0, 0, 0), standbys=(0, 1, 2))
T0 = CONFIG.start_ms
# Accounts by partition (3 partitions): ca, cc, ce, cf on 1; cb, cd on 2; cg on 0.


def test_a_new_epoch_aborts_the_open_transaction_and_refuses_the_old_one() -> None:
    logs = Logs()
    old = logs.init(0)
    txn = logs.transaction(0, old)
    txn.put(TopicKind.EVENTS, 0, b"k", b"old")
    new = logs.init(0)  # the fence: the open transaction of the old epoch is aborted
    assert new == old + 1 and not txn.open
    with pytest.raises(FencedError):
        txn.commit()
    with pytest.raises(FencedError):
        logs.transaction(0, old).put(TopicKind.EVENTS, 0, b"k", b"zombie")
    fresh = logs.transaction(0, new)
    fresh.put(TopicKind.EVENTS, 0, b"k", b"new")
    fresh.commit()
    log = logs.log(TopicKind.EVENTS, 0)
    assert [r.value for r in log.read(0)] == [b"new"]
    assert log.end == 4  # each transaction: its record and its marker
    assert logs.init(1) == 0  # another transactional id has epochs of its own


def _setup() -> list[Op]:
    return [
        Send(0, "ca", OpenAccount("EUR"), "open-ca", T0),
        Send(0, "cb", OpenAccount("EUR"), "open-cb", T0),
        Send(1, "ca", Deposit(100), "fund-ca", T0),
        *(Batch(p, 64, p) for p in range(3)),
        Send(0, "ca", Transfer("cb", 30), "t1", T0),
        Send(1, "ca", Deposit(5), "d2", T0),
    ]


def _inside_a_batch() -> list[Op]:
    return [*_setup(), Follow(1, 3), Takeover(1, midway=True, limit=8), Wake(1)]


def _between_batches() -> list[Op]:
    return [*_setup(), Takeover(1), Send(0, "ca", Deposit(1), "d3", T0), Wake(1, 8, 1)]


def test_a_zombie_inside_a_batch_is_fenced_and_its_commands_run_once() -> None:
    outcome = run_trace(_inside_a_batch(), CONFIG)
    assert outcome.violation is None, str(outcome.violation)
    assert (outcome.takeovers, outcome.fenced) == (1, 1)
    assert outcome.operations >= 5, "the new writer decided the zombie's commands"


def test_a_zombie_between_batches_is_fenced_at_its_first_write() -> None:
    outcome = run_trace(_between_batches(), CONFIG)
    assert outcome.violation is None, str(outcome.violation)
    assert (outcome.takeovers, outcome.fenced) == (1, 1)


@pytest.mark.parametrize("trace", [_inside_a_batch, _between_batches])
def test_without_fencing_the_zombie_traces_break(
    monkeypatch: pytest.MonkeyPatch, trace: Callable[[], list[Op]]
) -> None:
    """The zombie's batch commits a checkpoint past the one its successor stands at (inside
    a batch: the checkpoint of the transaction it had open across the takeover)."""
    monkeypatch.setattr(Logs, "fenced", lambda self, txn_id, epoch: False)  # the planted bug
    outcome = run_trace(trace(), CONFIG)
    assert outcome.violation is not None and outcome.violation.rule == "positions"
    assert outcome.fenced == 0


def test_a_seed_with_standbys_replays_exactly_and_takes_over() -> None:
    seed = next(s for s in range(20) if config_for(s).standbys)
    first = run_seed(seed, 600)
    again = run_trace(first.ops, config_for(seed))
    assert first.violation is None, str(first.violation)
    assert first.takeovers > 0 and first.fenced > 0
    assert (again.operations, again.commands, again.takeovers, again.fenced) == (
        first.operations,
        first.commands,
        first.takeovers,
        first.fenced,
    )


def _first_failure(seeds: int = 40) -> tuple[int, Outcome]:
    """The first seed that breaks a rule (only seeds with standbys take over)."""
    for seed in range(seeds):
        outcome = run_seed(seed, 600)
        if outcome.violation is not None:
            return seed, outcome
    raise AssertionError("the planted bug was not found")


def test_it_finds_a_zombie_that_fencing_does_not_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Logs, "fenced", lambda self, txn_id, epoch: False)  # the planted bug
    seed, outcome = _first_failure()
    assert outcome.violation is not None and config_for(seed).standbys
    assert outcome.violation.rule in {"positions", "exactly-once", "events", "state", "flows"}
    assert any(isinstance(op, Wake) for op in outcome.ops), str(outcome.violation)


def test_it_finds_a_promotion_that_does_not_catch_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimStandby, "catch_up", lambda self: None)  # writes from its lag
    seed, outcome = _first_failure()
    assert outcome.violation is not None and config_for(seed).standbys
    assert outcome.violation.rule in {"positions", "blocked", "events", "state"}
    assert any(isinstance(op, Takeover) for op in outcome.ops), str(outcome.violation)


def test_it_finds_a_standby_fold_that_drops_the_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    carry = Committed._carry

    def drop_flows(self: Committed, checkpoint: Checkpoint) -> None:
        flows = self.flows
        carry(self, checkpoint)
        self.flows = flows  # the planted bug: a followed checkpoint's flows are lost

    monkeypatch.setattr(Committed, "_carry", drop_flows)
    seed, outcome = _first_failure()
    assert outcome.violation is not None and config_for(seed).standbys
    assert outcome.violation.rule in {"standby", "flows"}, str(outcome.violation)


def test_it_finds_a_standby_that_applies_half_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    def eager(self: Batches, key: bytes | None, value: bytes | None) -> Batch_ | None:
        """The planted bug: each snapshot record applied as it comes, under the last
        checkpoint read, not buffered until its own batch's checkpoint."""
        last = self.__dict__.setdefault("last", Checkpoint(0))
        if key == CHECKPOINT_KEY:
            self.__dict__["last"] = decode_checkpoint(value)
            return Batch_([], self.__dict__["last"])
        return None if key is None else Batch_([(key, value)], last)

    monkeypatch.setattr(Batches, "feed", eager)
    seed, outcome = _first_failure()
    assert outcome.violation is not None and config_for(seed).standbys
    assert outcome.violation.rule == "standby", str(outcome.violation)


def test_a_zombie_trace_shrinks_and_still_fails_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Logs, "fenced", lambda self, txn_id, epoch: False)
    seed, outcome = _first_failure()
    assert outcome.violation is not None
    short = shrink(outcome, config_for(seed), budget_s=20)
    assert short.violation is not None and short.violation.rule == outcome.violation.rule
    assert len(short.ops) < len(outcome.ops)
    assert any(isinstance(op, Takeover) for op in short.ops)
