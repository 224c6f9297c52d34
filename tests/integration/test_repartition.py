"""The first end-to-end repartition on the real broker and local Ray (issue 23,
`docs/design-repartition.md`): a live application of 2 partitions grows to 4 through its
coordinator's ``repartition`` (the path ``eventledger repartition`` takes) while a background
load of deposits and transfers flows through a ``BankClient``.

S = 2 × 10 slots (``slots_per_partition`` = 10) keeps the moves few (one per source) so the
test stays short; the path is the one a full-size S takes. Checked, after the repartition is
DONE and the load stopped:

- every partition's views equal the fold of the events (by sequence, markers skipped), every
  command got one reply and its events are in the log once, and money is conserved;
- a command answered before the switch, retried with its id after it, gets the same reply;
- transfers whose legs straddle the switch settle exactly once: one held in flight across
  its source's move (its credit leg kept behind an open transaction on its target's
  partition, ``tests/integration/holds.py``, until the move is published: debited on the old
  partition, completed on the new one, each leg once); two-phase transfers reserved before
  it and posted after it (one side moving each); and every transfer of the load (debited
  once, credited once, ended once) with nothing left in flight;
- a moved account's history runs 1..n across the seam and ``state_at`` answers on both sides;
- a reader started before the switch finds the moving accounts all along (never "not found"
  between a handoff and the table's publication), at versions that never go back;
- new commands for moved accounts execute on their new partition, and a client still holding
  the old table is forwarded there (never executed on the old partition);
- the repartition record is DONE with every move PUBLISHED and its legs' pauses recorded, and
  the routing table names the new owners.

(Over 400 lines: the load, the reader and the checks of one end-to-end run stay together.)
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import ray

from actors.audit import AuditedEvent, fold_in_sequence, read_events
from actors.deployment import find_coordinator
from actors.ray_state import partition_actor
from actors.reads import Reads
from actors.retries import ReplyTimeoutError
from eventledger.bank import BankClient
from ledger import LEDGER, AccountView, Deposit, OpenAccount, Transfer
from ledger.events import TransferCompleted, TransferCredited, TransferDebited
from tests.integration.holds import InternalHold
from tests.integration.traffic import installed_views
from tests.integration.waiting import repartition_ended, wait_until
from topology.control import MoveState, RepartitionPhase
from topology.envelopes import Reply
from topology.moves import decode_slot_record
from topology.routing import Router, RoutingTable, plan_moves
from topology.settings import Settings

from .conftest import running

log = logging.getLogger(__name__)

SLOTS_PER_PARTITION = 10
OPENING = 10_000
HELD = 11  # the held transfer's amount


def _accounts(table: RoutingTable, moving: set[int]) -> dict[str, list[str]]:
    """Four accounts of each kind: moving off / staying on partition 0 / 1."""
    kinds: dict[str, list[str]] = {"move0": [], "move1": [], "stay0": [], "stay1": []}
    for i in itertools.count():
        name = f"rp-{i}"
        slot = table.slot_of(name.encode())
        kind = ("move" if slot in moving else "stay") + str(table.owners[slot])
        if len(kinds[kind]) < 4:
            kinds[kind].append(name)
        if all(len(v) == 4 for v in kinds.values()):
            return kinds
    raise AssertionError("unreachable")  # pragma: no cover


Op = Callable[[int, int], tuple[str, Any]]
"""The load's ``i``-th command of thread ``t``: (account, command)."""


def mixed(accounts: list[str]) -> Op:
    """Deposits and transfers between any two of ``accounts``."""
    n = len(accounts)

    def op(t: int, i: int) -> tuple[str, Any]:
        source = accounts[(i * 5 + t) % n]
        if i % 3 == 0:
            return source, Deposit(1 + i % 9)
        target = accounts[(i * 7 + t * 3 + 1) % n]
        if target == source:
            target = accounts[(accounts.index(source) + 1) % n]
        return source, Transfer(target, 1 + i % 13)

    return op


def deposits(accounts: list[str]) -> Op:
    """Deposits only: one partition each, so they are answered while transfers wait."""
    return lambda t, i: (accounts[(i + t) % len(accounts)], Deposit(1 + i % 9))


def crossing(kinds: dict[str, list[str]]) -> Op:
    """Transfers from accounts that move to accounts of the other partition that stay (one
    in eight the other way): with one always in flight per thread, several sources are
    between their debit and their completion at each handoff."""

    def op(t: int, i: int) -> tuple[str, Any]:
        side = (t + i) % 2
        moving, staying = kinds[f"move{side}"], kinds[f"stay{1 - side}"]
        pair = (moving[(t + i) % len(moving)], staying[(t * 3 + i) % len(staying)])
        source, target = pair if i % 8 else pair[::-1]
        return source, Transfer(target, 1 + i % 5)

    return op


class Load:
    """The commands of ``op`` from ``threads`` threads until stopped, each with its own id,
    retried with that id until it is answered."""

    def __init__(self, client: BankClient, name: str, op: Op, threads: int) -> None:
        self.client = client
        self.name = name
        self.op = op
        self.sent: dict[str, tuple[str, Any]] = {}
        self.replies: dict[str, Reply] = {}
        self.answers: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)
        ]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)
        assert not any(t.is_alive() for t in self._threads), "a load thread is stuck"
        assert not self.errors, f"the load failed: {self.errors!r}"

    @property
    def count(self) -> int:
        return len(self.replies)

    def _run(self, thread: int) -> None:
        try:
            for i in itertools.count():
                if self._stop.is_set():
                    return
                self._execute(f"{self.name}-{thread}-{i}", *self.op(thread, i))
        except BaseException as e:
            self.errors.append(e)
            log.exception("load thread %d failed", thread)

    def _execute(self, command_id: str, account: str, command: Any) -> None:
        with self._lock:
            self.sent[command_id] = (account, command)
        while True:
            try:
                reply = self.client.execute(account, command, command_id=command_id, timeout=10)
            except ReplyTimeoutError:
                continue  # the same id again: deduplicated if it was processed
            with self._lock:
                self.replies[command_id] = reply
                self.answers[command_id] += 1
            return


class Watch:
    """Reads the views of ``accounts`` over and over through a reader of its own (its own
    tail of the control topic), from before the switch until stopped: every read must find
    the account, at a version never below the one read before (``problems`` otherwise)."""

    def __init__(self, settings: Settings, accounts: list[str]) -> None:
        self.reads = Reads(settings, AccountView)
        self.accounts = accounts
        self.reads_done = 0
        self.followed = 0  # reads answered by another partition than the reader's table named
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        self.reads.close()
        assert not self._thread.is_alive(), "the reader is stuck"

    def _run(self) -> None:
        seen: dict[str, int] = {}
        while not self._stop.is_set():
            for account in self.accounts:
                asked = self.reads.partition_of(account)
                try:
                    found = self.reads.read(account, min_version=seen.get(account, 0))
                except Exception as e:
                    self.problems.append(f"{account}: {type(e).__name__}: {e}")
                    continue
                self.reads_done += 1
                self.followed += found.position.partition != asked
                if found.view is None:
                    self.problems.append(f"{account}: not found at {found.position}")
                seen[account] = max(seen.get(account, 0), found.version)


def _in_flight(client: BankClient, account: str, transfer_id: str) -> bool:
    view = client.reads.view(account)
    return view is not None and any(f.transfer_id == transfer_id for f in view.in_flight)


def _published_from(coordinator: Any, source: int) -> bool:
    """Every move off ``source`` is published (or the repartition ended, to fail fast)."""
    record = ray.get(coordinator.repartition_progress.remote(), timeout=30).record
    if record is None:
        return False
    if record.phase in (RepartitionPhase.DONE, RepartitionPhase.FAILED):
        return True
    off = [m for m in record.moves if m.source == source]
    return bool(off) and all(m.state is MoveState.PUBLISHED for m in off)


def _legs(events: list[AuditedEvent], transfer_id: str) -> list[tuple[str, int]]:
    """The transfer's debit, credit and completion events: (type, partition), in log order
    per type."""
    kinds = (TransferDebited, TransferCredited, TransferCompleted)
    found = [
        (type(e.event).__name__, e.partition)
        for e in events
        if isinstance(e.event, kinds) and e.event.transfer_id == transfer_id
    ]
    order = [k.__name__ for k in kinds]
    return sorted(found, key=lambda leg: order.index(leg[0]))


def _pending_settled(client: BankClient, account: str) -> bool:
    view = client.reads.view(account)
    return view is not None and view.pending_debits == 0 and view.pending_credits == 0


def _check_record(settings: Settings, done: Any, planned: Any, table: RoutingTable) -> None:
    """DONE, every planned move published with its legs' pauses, and every partition's slot
    record owning exactly its slots of the published (modular) table."""
    assert done.phase is RepartitionPhase.DONE, done.error
    assert {(m.source, m.target, m.slots) for m in done.moves} == {
        (m.source, m.target, m.slots) for m in planned
    }
    for m in done.moves:
        assert m.state is MoveState.PUBLISHED, m
        assert m.handoff_pause_ms is not None and m.handoff_pause_ms > 0, m
        assert m.install_pause_ms is not None and m.install_pause_ms > 0, m
    assert table.version == max(m.version for m in done.moves)
    assert list(table.owners) == [s % 4 for s in range(settings.slots)]
    handles = [partition_actor(settings.app_id, p) for p in range(4)]
    for p, stats in enumerate(ray.get([h.stats.remote() for h in handles], timeout=30)):
        assert stats.slot_record is not None, f"partition {p} has a slot record"
        record = decode_slot_record(stats.slot_record)
        assert record.slots() == [s for s in range(settings.slots) if s % 4 == p], p


def _check_history(client: BankClient, account: str, views: dict[str, Any]) -> None:
    """The account's history runs 1..n across its seam and ends at its view; ``state_at``
    answers before the move, at the retried command, and now."""
    page = client.reads.history(account, limit=1000)
    sequences = [e.sequence for e in page.entries]
    assert sequences == list(range(1, views[account].version + 1)), sequences
    assert page.entries[0].type == "AccountOpened"
    assert page.entries[-1].view == views[account]
    retried = next(e for e in page.entries if e.command_id == "rp-retried")
    for entry in (page.entries[0], retried, page.entries[-1]):
        at = client.reads.state_at(account, entry.sequence)
        assert at is not None and (at.version, at.view) == (entry.sequence, entry.view)
    moment = datetime.fromtimestamp(retried.timestamp_ms / 1000, UTC)
    at = client.reads.state_at(account, moment)
    assert at is not None and at.version >= retried.sequence


def _check_ledger(
    settings: Settings,
    events: list[AuditedEvent],
    loads: list[Load],
    kinds: dict[str, list[str]],
    table: RoutingTable,
) -> tuple[dict[str, Any], int, int]:
    """Every load command answered once and in ``events`` (the whole log) once if accepted;
    every transfer
    debited, credited and completed once; the views = the fold of the events; nothing in
    flight; every account on its owner only. Returns the views, the accepted deposits' total
    and how many transfers had their source's legs on two partitions (debited before its
    move, completed after)."""
    sent = {c: x for load in loads for c, x in load.sent.items()}
    replies = {c: r for load in loads for c, r in load.replies.items()}
    assert set(replies) == set(sent)
    assert all(n == 1 for load in loads for n in load.answers.values())
    accepted = {c for c, r in replies.items() if r.accepted}
    by_command = Counter(e.envelope.command_id for e in events)
    assert all(by_command[c] >= 1 for c in accepted)
    loaded = ("mixed-", "crossing-", "deposits-")
    assert not {c for c in by_command if c.startswith(loaded)} - accepted
    transfers = {c for c in accepted if isinstance(sent[c][1], Transfer)}
    assert transfers, "the load made transfers"
    legs = Counter(
        (type(e.event), e.event.transfer_id)
        for e in events
        if isinstance(e.event, (TransferDebited, TransferCredited, TransferCompleted))
    )
    for c in transfers:
        counted = [legs[(t, c)] for t in (TransferDebited, TransferCredited, TransferCompleted)]
        assert counted == [1, 1, 1], f"transfer {c}: debited, credited, completed {counted}"
    sides: dict[str, set[int]] = {}
    for e in events:
        c = getattr(e.event, "transfer_id", None)
        if c in transfers and e.envelope.aggregate_id == sent[c][0]:
            sides.setdefault(c, set()).add(e.partition)
    straddled = sum(1 for c in transfers if len(sides[c]) > 1)
    views = installed_views(settings)
    folded = fold_in_sequence(
        LEDGER, ((e.envelope.aggregate_id, e.envelope.sequence, e.event) for e in events)
    )
    versions = Counter(e.envelope.aggregate_id for e in events)
    assert {a: (v.balance, v.version) for a, v in views.items()} == {
        a: (s.balance, versions[a]) for a, s in folded.items()
    }, "every view is the fold of its events"
    assert all(not v.in_flight for v in views.values()), "nothing left in flight"
    handles = [partition_actor(settings.app_id, p) for p in range(4)]
    held = [set(v) for v in ray.get([h.views.remote() for h in handles], timeout=30)]
    for account in (a for v in kinds.values() for a in v):
        owner = table.owner_of(account.encode())
        assert [p for p in range(4) if account in held[p]] == [owner], account
    deposits = sum(sent[c][1].amount for c in accepted if isinstance(sent[c][1], Deposit))
    return views, deposits, straddled


def _check_landed(events: list[AuditedEvent], table: RoutingTable, m0: str, m1: str) -> None:
    """Where the switch's own commands ran: the stale client's deposit to m1 on m1's new
    owner only; the held transfer from m0 debited on 0 before m0 moved, credited on 1 and
    completed on m0's new owner, each leg once."""
    forwarded = {e.partition for e in events if e.envelope.command_id == "rp-stale"}
    assert forwarded == {table.owner_of(m1.encode())}, "rp-stale ran on m1's owner only"
    assert _legs(events, "rp-held") == [
        ("TransferDebited", 0),
        ("TransferCredited", 1),
        ("TransferCompleted", table.owner_of(m0.encode())),
    ], "the held transfer straddles m0's move: debited before it, completed after, once"


def _check_after(
    settings: Settings,
    table: RoutingTable,
    before: RoutingTable,
    kinds: dict[str, list[str]],
    first: Reply,
) -> int:
    """After the switch: the retry of ``first`` gets it again, byte for byte; new commands
    for moved accounts run on their new owner, also from a client that still holds the old
    table ``before`` (forwarded: its reply is the new owner's; the test reads where its
    event lies with the rest of the log); the two-phase transfers reserved before the
    switch post and settle. Returns the money deposited."""
    client = BankClient(settings, timeout=60)
    m0, m1, s0, s1 = (kinds[k][0] for k in ("move0", "move1", "stay0", "stay1"))
    added = 0
    try:
        # The retry after the switch gets the first reply, byte for byte.
        again = client.execute(m0, Deposit(7), command_id="rp-retried")
        assert again == first
        assert msgspec.msgpack.encode(again) == msgspec.msgpack.encode(first)

        # New commands for moved accounts run on their new owner; a client holding the old
        # table is forwarded there, never executed on the old partition.
        for account in (m0, m1):
            owner = table.owner_of(account.encode())
            assert owner in (2, 3) and client.partition_of(account) == owner
            reply = client.execute(account, Deposit(3), command_id=f"rp-new-{account}")
            assert reply.accepted and reply.position is not None
            assert reply.position.partition == owner
            added += 3
        stale = BankClient(settings, timeout=60)
        try:
            stale.routes.router = Router(4, before)  # the old table, as before the switch
            assert stale.partition_of(m1) == 1
            reply = stale.execute(m1, Deposit(5), command_id="rp-stale")
            assert reply.accepted and reply.position is not None
            assert reply.position.partition == table.owner_of(m1.encode())
            added += 5
        finally:
            stale.close()

        # Two-phase transfers reserved before the switch, posted after it.
        for transfer_id, source in (("rp-pend-src", m0), ("rp-pend-dst", s0)):
            posted = client.post_pending(
                transfer_id, source=source, command_id=f"{transfer_id}-post"
            )
            assert posted.accepted, posted
        for account in (m0, s1, s0, m1):
            wait_until(lambda a=account: _pending_settled(client, a), 60, f"{account} settled")
    finally:
        client.close()
    return added


@pytest.mark.usefixtures("ray_local")
def test_a_live_app_repartitions_from_2_to_4_under_load(
    bootstrap: str, app_id: str, state_dir: str
) -> None:
    settings = Settings.resolve(
        app_id=app_id,
        bootstrap_servers=bootstrap,
        partitions=2,
        state_dir=state_dir,
        slots_per_partition=SLOTS_PER_PARTITION,
        environ={},
    )
    before = RoutingTable.initial(2, settings.slots)
    planned = plan_moves(before, 4)
    kinds = _accounts(before, {s for m in planned for s in m.slots})
    accounts = [a for v in kinds.values() for a in v]
    grown = replace(settings, partitions=4)
    m0, m1, s0, s1 = (kinds[k][0] for k in ("move0", "move1", "stay0", "stay1"))

    with running(settings) as served:
        client = served.client
        coordinator = find_coordinator(app_id)
        for a in accounts:
            assert client.execute(a, OpenAccount("EUR"), command_id=f"open-{a}").accepted
            assert client.execute(a, Deposit(OPENING), command_id=f"fund-{a}").accepted
        deposited = OPENING * len(accounts)

        # Before the switch: a command to retry after it, and two-phase transfers whose
        # reservations move with their accounts (the source moving; the target moving).
        first = client.execute(m0, Deposit(7), command_id="rp-retried")
        assert first.accepted and first.position is not None and first.position.partition == 0
        deposited += 7
        for transfer_id, source, target in (("rp-pend-src", m0, s1), ("rp-pend-dst", s0, m1)):
            reserved = client.transfer(source, target, 300, transfer_id=transfer_id, pending=True)
            assert reserved.accepted, reserved

        watch = Watch(settings, [m0, m1, s0, s1])
        loads = [
            Load(client, "mixed", mixed(accounts), threads=2).start(),
            Load(client, "crossing", crossing(kinds), threads=10).start(),
            Load(client, "deposits", deposits(accounts), threads=1).start(),
        ]
        wait_until(lambda: sum(x.count for x in loads) >= 50, 60, "the load's first replies")

        # A transfer from m0 held in flight across m0's move: debited on partition 0 before
        # the move is requested, its credit leg to s1 (partition 1) waits behind the hold
        # until partition 0's move is published, so it completes on m0's new partition.
        with InternalHold(settings, 1) as hold, ThreadPoolExecutor(1) as pool:
            held = pool.submit(client.transfer, m0, s1, HELD, transfer_id="rp-held", timeout=240)
            wait_until(lambda: _in_flight(client, m0, "rp-held"), 60, "rp-held's debit")
            at_start = sum(x.count for x in loads)
            started = ray.get(coordinator.repartition.remote(4, 2), timeout=60)
            assert (started.from_partitions, started.to_partitions) == (2, 4)
            wait_until(lambda: _published_from(coordinator, 0), 120, "partition 0's move")
            hold.release()
            assert held.result(240).accepted
        done = wait_until(lambda: repartition_ended(coordinator), 120, "the repartition to end")
        at_switch = sum(x.count for x in loads)
        assert at_switch > at_start, "commands were answered during the switch"
        wait_until(
            lambda: sum(x.count for x in loads) >= at_switch + 50, 60, "replies after the switch"
        )
        for load in loads:
            load.stop()
        watch.stop()
        assert watch.reads_done > 0 and not watch.problems, watch.problems[:5]

        published = ray.get(coordinator.status.remote(), timeout=30).routing_version
        wait_until(
            lambda: (t := client.routes.table) is not None and t.version == published,
            30,
            "the client to read the published table",
        )
        table = client.routes.table
        assert table is not None
        _check_record(settings, done, planned, table)

        deposited += _check_after(settings, table, before, kinds, first)
        events = list(read_events(grown, LEDGER))  # the whole log, read once
        _check_landed(events, table, m0, m1)
        views, deposits_total, straddled = _check_ledger(grown, events, loads, kinds, table)
        total = sum(v.balance for v in views.values())
        assert total == deposited + deposits_total, "money conserved"
        _check_history(client, m0, views)
        print(  # the numbers, for a run with -rP
            f"{sum(x.count for x in loads)} load replies, {at_switch - at_start} during the "
            f"switch; {straddled} load transfers straddled it; {watch.reads_done} reads "
            f"({watch.followed} followed a move); moves "
            + "; ".join(
                f"{m.move_id} {m.source}→{m.target} {len(m.slots)} slots v{m.version} "
                f"handoff {m.handoff_pause_ms:.0f} ms install {m.install_pause_ms:.0f} ms "
                f"published {m.published_at - m.requested_at:.2f} s after its request"
                for m in done.moves
            )
        )
