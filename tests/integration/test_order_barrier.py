"""The client's order barrier across a repartition, on the real broker and local Ray (issue
23, design-repartition.md "Clients follow", ``actors/barrier.py``).

A client pipelines, without awaiting between them, a deposit and then a withdrawal of the
same amount to each of many accounts (most of them moving), round after round. The
withdrawal of a round goes in the next round's sends, so it is usually sent while its
deposit is still in flight: when the client learns the new table in between, the deposit
went to the old owner (and is forwarded) and the withdrawal would go straight to the new
one, where it could be executed first, on a balance of 0. Two such pipelines:

1. one client's, while the application grows from 2 to 4 partitions: the client learns the
   table from the control topic whenever it is published (with commands in flight or, if the
   pause answered them all at once, without);
2. once grown, a second client that still holds the old table (its commands forwarded by
   the old owners) learns the published table in the middle of its pipeline, so the switch
   always meets commands in flight: the barrier held some.

Checked, once every reply is in: every command accepted (never ``insufficient_funds``: no
withdrawal overtook its deposit); each account's events in the order its commands were sent;
every view the fold of its events; money conserved (deposits in, withdrawals out).
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import pytest
import ray

from actors.audit import fold_events, read_events
from actors.deployment import find_coordinator
from eventledger.bank import BankClient
from ledger import LEDGER, Deposit, OpenAccount, Withdraw
from tests.integration.traffic import installed_views
from tests.integration.waiting import repartition_ended, wait_until
from topology.control import RepartitionPhase
from topology.envelopes import Reply
from topology.routing import Router, RoutingTable, plan_moves
from topology.settings import Settings

from .conftest import running

log = logging.getLogger(__name__)

# The slow group (`make test-slow`): half a minute for its own growth; the rule is
# unit-tested (tests/unit/test_barrier.py) and every command of the default run's
# repartition and shrink tests goes through the barrier.
pytestmark = pytest.mark.slow

MOVING = 32
STAYING = 8
ROUNDS_IN_FLIGHT = 8  # so the old owner lags: a deposit waits there behind a few rounds


def _accounts(table: RoutingTable, moving: set[int]) -> list[str]:
    """``MOVING`` accounts of slots that move, then ``STAYING`` of slots that stay."""
    move: list[str] = []
    stay: list[str] = []
    for i in itertools.count():
        name = f"ob-{i}"
        kind = move if table.slot_of(name.encode()) in moving else stay
        kind.append(name)
        if len(move) >= MOVING and len(stay) >= STAYING:
            return move[:MOVING] + stay[:STAYING]
    raise AssertionError("unreachable")  # pragma: no cover


class Pipeline:
    """Round r sends, to every account, the withdrawal of round r-1 and then the deposit of
    round r (amount ``100 + r``), without awaiting; ``ROUNDS_IN_FLIGHT`` rounds are
    unanswered at most. ``stop`` sends the last withdrawals and awaits everything."""

    def __init__(self, client: BankClient, accounts: list[str], name: str) -> None:
        self.client = client
        self.accounts = accounts
        self.name = name
        self.sent: dict[str, list[str]] = {a: [] for a in accounts}  # command ids, in order
        self.amounts: dict[str, int] = {}  # command id → what it adds to its account
        self.replies: dict[str, Reply] = {}
        self.rounds = 0
        self.errors: list[BaseException] = []
        self._futures: list[list[tuple[str, Future[Reply]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Pipeline:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(180)
        assert not self._thread.is_alive(), "the pipeline is stuck"
        assert not self.errors, f"the pipeline failed: {self.errors!r}"

    def _send(self, account: str, command_id: str, command: Any) -> tuple[str, Future[Reply]]:
        self.sent[account].append(command_id)
        sign = 1 if isinstance(command, Deposit) else -1
        self.amounts[command_id] = sign * command.amount
        return command_id, self.client.send(account, command, command_id=command_id)

    def _round(self, r: int, *, deposit: bool) -> None:
        sends = []
        for a in self.accounts:
            if r > 0:
                sends.append(self._send(a, f"{self.name}-w{r - 1}-{a}", Withdraw(100 + r - 1)))
            if deposit:
                sends.append(self._send(a, f"{self.name}-d{r}-{a}", Deposit(100 + r)))
        self._futures.append(sends)
        if len(self._futures) > ROUNDS_IN_FLIGHT:
            self._await(self._futures.pop(0))

    def _await(self, sends: list[tuple[str, Future[Reply]]]) -> None:
        for command_id, future in sends:
            self.replies[command_id] = future.result(120)

    def _run(self) -> None:
        try:
            for r in itertools.count():
                if self._stop.is_set():
                    self._round(r, deposit=False)
                    for sends in self._futures:
                        self._await(sends)
                    return
                self._round(r, deposit=True)
                self.rounds = r + 1
        except BaseException as e:
            self.errors.append(e)
            log.exception("the pipeline failed")


@pytest.mark.usefixtures("ray_local")
def test_a_clients_pipelined_commands_keep_their_order_across_a_repartition(
    bootstrap: str, app_id: str, state_dir: str
) -> None:
    settings = Settings.resolve(
        app_id=app_id,
        bootstrap_servers=bootstrap,
        partitions=2,
        state_dir=state_dir,
        slots_per_partition=10,
        environ={},
    )
    before = RoutingTable.initial(2, settings.slots)
    accounts = _accounts(before, {s for m in plan_moves(before, 4) for s in m.slots})
    grown = replace(settings, partitions=4)

    with running(settings) as served:
        client = served.client
        coordinator = find_coordinator(app_id)
        for a in accounts:
            assert client.execute(a, OpenAccount("EUR"), command_id=f"ob-open-{a}").accepted

        growing = Pipeline(client, accounts, "ob").start()
        wait_until(lambda: growing.rounds >= 5, 60, "the pipeline's first rounds")
        ray.get(coordinator.repartition.remote(4, 2), timeout=60)
        done = wait_until(lambda: repartition_ended(coordinator), 120, "the repartition to end")
        assert done.phase is RepartitionPhase.DONE, done.error
        published = ray.get(coordinator.status.remote(), timeout=30).routing_version
        wait_until(
            lambda: (t := client.routes.table) is not None and t.version == published,
            30,
            "the client to read the published table",
        )
        at_switch = growing.rounds
        wait_until(lambda: growing.rounds >= at_switch + 5, 60, "rounds after the switch")
        growing.stop()
        table = client.routes.table
        assert table is not None

        stale = BankClient(settings, timeout=60)
        try:
            stale.routes.router = Router(4, before)  # the old table, as before the switch
            moving = accounts[:MOVING]
            assert all(stale.partition_of(a) != table.owner_of(a.encode()) for a in moving)
            learning = Pipeline(stale, moving, "obs").start()
            wait_until(lambda: learning.rounds >= 10, 60, "the stale client's first rounds")
            assert stale.routes.merge(table)  # as if read from the control topic now
            at_learning = learning.rounds
            wait_until(lambda: learning.rounds >= at_learning + 10, 60, "rounds after it")
            learning.stop()
            held, held_seconds = stale.held, stale.held_seconds
        finally:
            stale.close()
        pipelines = [growing, learning]
        print(  # the numbers, for a run with -rP
            f"growing: {growing.rounds} rounds ({at_switch} before the client read the "
            f"table), {client.held} commands held; learning: {learning.rounds} rounds "
            f"({at_learning} on the old table), {held} held, for "
            f"{1000 * held_seconds / max(held, 1):.0f} ms on average"
        )
        refused = {c: r.code for x in pipelines for c, r in x.replies.items() if not r.accepted}
        assert not refused, f"{len(refused)} refused, e.g. {list(refused.items())[:5]}"
        assert held > 0, "the stale client learnt the table with commands in flight"
        _check_ledger(grown, accounts, pipelines)


def _check_ledger(settings: Settings, accounts: list[str], pipelines: list[Pipeline]) -> None:
    """Each account's events in the order its commands were sent (the pipelines one after
    the other); every view the fold of its events; money conserved."""
    sent = {a: [c for x in pipelines for c in x.sent.get(a, [])] for a in accounts}
    executed: dict[str, list[str]] = {a: [] for a in accounts}
    for e in sorted(
        (e for e in read_events(settings, LEDGER) if e.envelope.aggregate_id in sent),
        key=lambda e: (e.envelope.aggregate_id, e.envelope.sequence),
    ):
        if not e.envelope.command_id.startswith("ob-open-"):
            executed[e.envelope.aggregate_id].append(e.envelope.command_id)
    out_of_order = [a for a in accounts if executed[a] != sent[a]]
    assert not out_of_order, f"events not in send order: {out_of_order[:5]}"

    views = installed_views(settings)
    folded = fold_events(settings, LEDGER)
    mine = {a: (v.balance, v.version) for a, v in views.items() if a in sent}
    assert mine == {a: (folded[a].balance, len(executed[a]) + 1) for a in accounts}
    replies = {c: r for x in pipelines for c, r in x.replies.items()}
    amounts = {c: n for x in pipelines for c, n in x.amounts.items()}
    expected = {a: sum(amounts[c] for c in sent[a] if replies[c].accepted) for a in accounts}
    assert {a: balance for a, (balance, _) in mine.items()} == expected, "money conserved"
