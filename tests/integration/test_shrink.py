"""A live application shrinks on the real broker and local Ray (issue 23, stage 6,
`docs/design-repartition.md` **Shrink**): 4 partitions go to 2 through the coordinator's
``repartition`` (the path ``eventledger repartition`` takes) while a load of deposits and
transfers flows. The slots are assigned by the shrink itself (S = 4 × 5, one or two moves per
source). Checked, once it is DONE and the load stopped:

- the topics and the recorded count stay 4; the routing table gives partitions 2 and 3 no
  slot, their slot records own nothing, and ``status`` names them drained;
- every command of the load got one reply and is in the events once if accepted, every
  transfer was debited, credited and completed once, the views equal the fold of the events,
  nothing is in flight, and money is conserved;
- a command answered on a drained partition before the shrink, retried with its id after
  it, gets the same reply, byte for byte; a client still holding the old table sends to a
  drained partition, which forwards (executed on the new owner only);
- a moved account's history runs 1..n across the seam and ``state_at`` answers on both sides.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import msgspec
import pytest
import ray

from actors.audit import read_events
from actors.deployment import find_coordinator
from actors.ray_state import partition_actor
from eventledger.bank import BankClient
from ledger import LEDGER, Deposit, OpenAccount
from tests.integration.test_repartition import Load, _check_history, _check_ledger, mixed
from tests.integration.waiting import repartition_ended, wait_until
from topology.control import MoveState, RepartitionPhase
from topology.moves import decode_slot_record
from topology.routing import Router, RoutingTable
from topology.settings import Settings

from .conftest import running

# The slow group (`make test-slow`): a shrink runs the growth's moves (`test_repartition.py`,
# in the default run); what is its own (no growth, drained partitions) the driver's unit
# tests and the simulator's shrinking seeds check.
pytestmark = pytest.mark.slow

SLOTS_PER_PARTITION = 5
OPENING = 10_000


def _accounts(table: RoutingTable) -> dict[str, list[str]]:
    """Three accounts on each of the 4 partitions: "drain2", "drain3" (they move) and
    "stay0", "stay1" (they stay)."""
    kinds: dict[str, list[str]] = {"stay0": [], "stay1": [], "drain2": [], "drain3": []}
    for i in itertools.count():
        name = f"sh-{i}"
        owner = table.owner_of(name.encode())
        kind = ("stay" if owner < 2 else "drain") + str(owner)
        if len(kinds[kind]) < 3:
            kinds[kind].append(name)
        if all(len(v) == 3 for v in kinds.values()):
            return kinds
    raise AssertionError("unreachable")  # pragma: no cover


def _check_drained(settings: Settings, coordinator: Any, client: BankClient, done: Any) -> Any:
    """The record DONE with every move from 2 or 3 to 0 or 1 published; the topics and the
    recorded count still 4; the table, the slot records and ``status``: 2 and 3 drained.
    Returns the published table (once the client reads it)."""
    assert done.phase is RepartitionPhase.DONE, done.error
    assert done.moves and all(m.state is MoveState.PUBLISHED for m in done.moves)
    assert {(m.source, m.target) for m in done.moves} <= {(2, 0), (2, 1), (3, 0), (3, 1)}
    status = ray.get(coordinator.status.remote(), timeout=30)
    wait_until(
        lambda: (t := client.routes.table) is not None and t.version == status.routing_version,
        30,
        "the client to read the published table",
    )
    table = client.routes.table
    assert table is not None and table.counts(4) == [10, 10, 0, 0]
    assert status.partitions == 4 and client.routes.partitions == 4
    assert [(r.slots, r.drained) for r in status.rows] == [
        (10, False),
        (10, False),
        (0, True),
        (0, True),
    ]
    handles = [partition_actor(settings.app_id, p) for p in range(4)]
    for p, stats in enumerate(ray.get([h.stats.remote() for h in handles], timeout=30)):
        assert stats.slot_record is not None, p
        owned = decode_slot_record(stats.slot_record).slots()
        assert owned == [s for s in range(settings.slots) if table.owners[s] == p], p
    return table


@pytest.mark.usefixtures("ray_local")
def test_a_live_app_shrinks_from_4_to_2_under_load(
    bootstrap: str, app_id: str, state_dir: str
) -> None:
    settings = Settings.resolve(
        app_id=app_id,
        bootstrap_servers=bootstrap,
        partitions=4,
        state_dir=state_dir,
        slots_per_partition=SLOTS_PER_PARTITION,
        environ={},
    )
    before = RoutingTable.initial(4, settings.slots)
    kinds = _accounts(before)
    accounts = [a for v in kinds.values() for a in v]
    d2, d3 = kinds["drain2"][0], kinds["drain3"][0]

    with running(settings) as served:
        client = served.client
        coordinator = find_coordinator(app_id)
        for a in accounts:
            assert client.execute(a, OpenAccount("EUR"), command_id=f"open-{a}").accepted
            assert client.execute(a, Deposit(OPENING), command_id=f"fund-{a}").accepted
        deposited = OPENING * len(accounts)
        first = client.execute(d2, Deposit(7), command_id="rp-retried")  # on partition 2
        assert first.accepted and first.position is not None and first.position.partition == 2
        deposited += 7

        loads = [Load(client, "mixed", mixed(accounts), threads=4).start()]
        wait_until(lambda: loads[0].count >= 40, 60, "the load's first replies")
        at_start = loads[0].count
        started = ray.get(coordinator.repartition.remote(2, 2), timeout=60)
        assert (started.from_partitions, started.to_partitions) == (4, 2)
        done = wait_until(lambda: repartition_ended(coordinator), 120, "the shrink to end")
        at_switch = loads[0].count
        wait_until(lambda: loads[0].count >= at_switch + 40, 60, "replies after the shrink")
        loads[0].stop()

        table = _check_drained(settings, coordinator, client, done)

        # The retry answers byte for byte; a stale client is forwarded by a drained partition.
        again = client.execute(d2, Deposit(7), command_id="rp-retried")
        assert msgspec.msgpack.encode(again) == msgspec.msgpack.encode(first)
        stale = BankClient(settings, timeout=60)
        try:
            stale.routes.router = Router(4, before)
            assert stale.partition_of(d3) == 3
            reply = stale.execute(d3, Deposit(5), command_id="sh-stale")
            assert reply.accepted and reply.position is not None
            assert reply.position.partition == table.owner_of(d3.encode()) < 2
            deposited += 5
        finally:
            stale.close()
        executed = Counter(
            e.partition
            for e in read_events(settings, LEDGER)
            if e.envelope.command_id == "sh-stale"
        )
        assert executed == Counter({table.owner_of(d3.encode()): 1})

        # The ledger: one reply each, views = fold of the events, nothing in flight, money.
        views, deposits, _ = _check_ledger(settings, loads, kinds, table)
        assert sum(v.balance for v in views.values()) == deposited + deposits, "money conserved"
        _check_history(client, d2, views)
        print(  # the numbers, for a run with -rP
            f"{loads[0].count} load replies, {at_switch - at_start} during the shrink; moves "
            + "; ".join(
                f"{m.move_id} {m.source}→{m.target} {len(m.slots)} slots v{m.version} "
                f"handoff {m.handoff_pause_ms:.0f} ms install {m.install_pause_ms:.0f} ms"
                for m in done.moves
            )
        )
