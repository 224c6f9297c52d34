"""The coordinator's takeover: a dead writer's partition is handed to its best standby.

``take_over`` runs on the detector's thread (``actors.liveness``) the moment a writer's
liveness connection ends. It plans with ``topology.placement.plan_takeover`` over the
standbys as the last tick observed them, records ``PartitionRecord(writer=m, epoch=e+1)`` in
the control topic, and only then calls ``promote(e+1)`` on member m. Without a candidate it
does nothing: Ray restarts the writer in place, or the place step replaces it (the restart
path). The member Ray restarts after a takeover reads the record and comes back a standby.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
import ray

from actors.messages import PartitionStatus
from actors.ray_state import TAKEOVER, lookup_actor
from actors.supervisor import Observation
from topology.control import PartitionRecord
from topology.names import NAMESPACE, Names
from topology.placement import Candidate, Takeover, plan_takeover
from topology.settings import Settings

__all__ = ["PROMOTE_SECONDS", "candidates", "take_over"]

log = logging.getLogger(__name__)

PROMOTE_SECONDS = 60.0
"""How long the coordinator waits for a promotion (a standby far behind reads its tail)."""


def candidates(tick: Observation, partition: int, dead: int) -> list[Candidate]:
    """The partition's members but ``dead`` as the takeover plan sees them at ``tick``: lag
    is the commit sequences between the writer's last reported one and theirs."""
    writer = tick.actual[partition].stats
    top = writer.seq if writer is not None else 0
    found = []
    for (p, m), a in sorted(tick.standbys.items()):
        if p != partition or m == dead or a.stats is None:
            continue
        following = a.stats.status is PartitionStatus.FOLLOWING
        lag = max(0, top - a.stats.seq)
        found.append(Candidate(m, a.observed.node_id, following, a.stats.generation, lag))
    return found


def take_over(
    settings: Settings,
    tick: Observation,
    record: PartitionRecord,
    dead: int,
    write: Callable[[PartitionRecord], None],
) -> Takeover | None:
    """Hand partition ``record.partition``, whose writer member ``dead`` died, to its best
    standby: record, then promote. Returns the takeover (None: no candidate, or the record
    names another writer already). Raises when the promotion fails (the record stands: the
    next tick sees the member broken and replaces it)."""
    p = record.partition
    if record.writer != dead:
        return None
    plan = plan_takeover(p, record.epoch, record.generation, candidates(tick, p, dead), tick.nodes)
    if plan is None:
        log.warning("partition %d: no standby can take over; the writer is restarted", p)
        return None
    began = time.monotonic()
    write(msgspec.structs.replace(record, writer=plan.member, epoch=plan.epoch))
    recorded = time.monotonic()
    handle = lookup_actor(Names.of(settings).member_actor(p, plan.member), NAMESPACE)
    if handle is None:
        raise RuntimeError(f"partition {p} member {plan.member} is gone")
    call = handle.promote.options(concurrency_group=TAKEOVER)
    status = ray.get(call.remote(plan.epoch, time.time()), timeout=PROMOTE_SECONDS)
    log.warning(
        "partition %d: member %d took over from member %d at epoch %d (%s): recorded in "
        "%.0f ms, promoted in %.0f ms",
        p,
        plan.member,
        dead,
        plan.epoch,
        status,
        (recorded - began) * 1000,
        (time.monotonic() - recorded) * 1000,
    )
    return plan
