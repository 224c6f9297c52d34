"""The coordinator's standby step, the members it tells readers about, and the routing
tables it pushes to them.

Every tick, after the writers are placed: ``topology.placement.plan_standbys`` decides, with
the standbys each partition should have (``Settings.standbys_for`` the alive nodes), and this
step does it. A standby's node is recorded in the partition's control record
(``PartitionRecord.nodes``) before it is started, so a restarted coordinator places it where
its id memory is. A standby that serves another snapshot generation than the desired one (its
writer switched after a rebuild) is retired; the next tick starts it on the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import msgspec

from actors.messages import Members, PartitionStatus
from actors.ray_state import RayState
from actors.supervisor import ANSWER_SECONDS, Observation, answers, retire, start_standby
from topology.control import PartitionRecord
from topology.names import Names
from topology.placement import ActorPhase, RetireStandby, StartStandby, plan_standbys
from topology.protocol import AnyAggregate
from topology.routing import RoutingTable
from topology.settings import Settings

__all__ = ["members_of", "place_standbys", "push_routing"]

log = logging.getLogger(__name__)


def place_standbys(
    settings: Settings,
    tick: Observation,
    desired: Callable[[int], PartitionRecord],
    write: Callable[[PartitionRecord], None],
    *,
    aggregate: AnyAggregate,
    aggregates: Mapping[int, int],
) -> None:
    """Start, retire and replace standbys as ``plan_standbys`` says for ``tick``;
    ``desired(p)`` is partition p's record now, ``write`` records a changed one."""
    names = Names.of(settings)
    count = settings.standbys_for(len(tick.nodes))
    writers = {a.partition: a.observed for a in tick.actual}
    writing = {p: r.writer for p, r in tick.desired.items()}
    standbys = {key: a.observed for key, a in tick.standbys.items()}
    placed: dict[tuple[int, int], str | None] = {
        (p, m): node for p, r in tick.desired.items() for m, node in r.nodes.items()
    }
    for (p, m), a in sorted(tick.standbys.items()):
        if a.stats is not None and a.stats.generation != desired(p).generation:
            log.info("partition %d standby %d: serves an old generation; retiring it", p, m)
            retire(names.member_actor(p, m), graceful=True)
            standbys.pop((p, m))
    for action in plan_standbys(
        count, writers, standbys, tick.nodes, placed, writer_members=writing
    ):
        name = names.member_actor(action.partition, action.member)
        match action:
            case RetireStandby(partition=p, member=m, reason=reason):
                log.warning("partition %d standby %d: retiring it (%s)", p, m, reason)
                retire(name, graceful=False)
            case StartStandby(partition=p, member=m, node_id=node):
                log.info("partition %d standby %d: starting on node %s", p, m, node[:8])
                record = desired(p)
                write(msgspec.structs.replace(record, nodes={**record.nodes, m: node}))
                start_standby(
                    settings, p, m, node, aggregate=aggregate, aggregates=aggregates.get(p, 0)
                )


def members_of(
    tick: Observation | None, partitions: int, writers: Mapping[int, int] | None = None
) -> Members:
    """Per partition, its writer member (``writers``, as recorded) and the standby members
    that followed their writer at ``tick``: those that said so, and live ones that did not
    answer in time (a reader that finds one stalled asks the writer instead, and avoids it
    until it learns the members again)."""
    following: dict[int, list[int]] = {p: [] for p in range(partitions)}
    for (p, m), a in sorted((tick.standbys if tick is not None else {}).items()):
        if a.stats is None:
            alive = a.info is not None and a.info.state is RayState.ALIVE
        else:
            alive = a.stats.status is PartitionStatus.FOLLOWING
        if alive:
            following[p].append(m)
    return Members(standbys=following, writers=dict(writers or {}))


def push_routing(tick: Observation | None, table: RoutingTable, *, behind: bool = False) -> None:
    """Give ``table`` to every member (writer or standby) running at ``tick`` (``behind``:
    to those that reported an older table's version), all at once, waiting at most
    ``ANSWER_SECONDS``. Best effort: a member that misses it is given it at a later tick
    (the coordinator pushes to those behind every tick), and only a newer table changes
    what a member holds."""
    if tick is None:
        return
    running = [
        a
        for a in [*tick.actual, *tick.standbys.values()]
        if a.info is not None and a.observed.phase is ActorPhase.RUNNING
    ]
    if behind:
        running = [a for a in running if a.stats and a.stats.routing_version < table.version]
    calls = {
        (a.partition, a.member): a.info.handle.set_routing.remote(table)
        for a in running
        if a.info is not None
    }
    _, failed = answers(calls, ANSWER_SECONDS)
    for key, why in failed.items():
        log.info("member %s did not take routing version %d: %s", key, table.version, why)
