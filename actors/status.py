"""``eventledger status`` as the coordinator builds it: one typed row per partition, from
what the control topic desires and what the last tick observed.

Invariant: a row's ``state`` is decided by ``row_state`` alone, from the actor's phase (as
the placement sees it), the actor's own status and the paused and rebuilding flags; every
combination maps to one ``RowState``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from actors.messages import (
    PartitionStats,
    PartitionStatus,
    RebuildProgress,
    RowState,
    ServiceStatus,
    StatusRow,
)
from actors.supervisor import Observation, PartitionActual
from topology.control import PartitionRecord, RepartitionRecord, drained_partitions
from topology.placement import ActorPhase
from topology.routing import RoutingTable
from topology.settings import Settings

__all__ = ["row_state", "service_status", "status_row"]


def row_state(
    phase: ActorPhase, status: PartitionStatus | None, *, paused: bool, rebuilding: bool
) -> RowState:
    """The state shown for a partition whose actor is in ``phase`` and reports ``status``
    (None: it did not answer); ``paused`` by the actor or in the desired state, and with a
    rebuild running beside it."""
    match phase:
        case ActorPhase.RUNNING:
            if status is PartitionStatus.BLOCKED:
                return RowState.BLOCKED
            if paused:
                return RowState.PAUSED
            return RowState.REBUILDING if rebuilding else RowState.RUNNING
        case ActorPhase.STARTING:
            return RowState.RESTORING
        case ActorPhase.RESTARTING:
            return RowState.RESTARTING
        case ActorPhase.BROKEN:  # its loop stopped: fenced, stopped or failed
            if status is PartitionStatus.FENCED:
                return RowState.FENCED
            if status is PartitionStatus.STOPPED:
                return RowState.STOPPED
            return RowState.FAILED
        case ActorPhase.MISSING:
            return RowState.MISSING


def status_row(
    p: int,
    desired: PartitionRecord,
    *,
    actual: PartitionActual | None,
    end: int | None,
    rebuild: RebuildProgress | None,
    now: float,
    standbys: Sequence[PartitionActual] = (),
    slots: int | None = None,
    drained: bool = False,
) -> StatusRow:
    """Partition ``p``'s row: ``actual`` as observed at ``now`` (None: not yet observed),
    ``end`` the end offset of its commands partition then, ``standbys`` its standby members
    that exist (their lag: commits behind the writer), ``slots`` the slots the routing
    table gives it (None: no table), ``drained`` whether it is drained."""
    stats = actual.stats if actual is not None else None
    info = actual.info if actual is not None else None
    state = row_state(
        actual.observed.phase if actual is not None else ActorPhase.MISSING,
        stats.status if stats is not None else None,
        paused=(stats is not None and stats.paused) or desired.paused,
        rebuilding=rebuild is not None and rebuild.phase.active,
    )
    committed = stats.committed_offset if stats is not None else None
    last_commit = stats.last_commit_at if stats is not None else 0.0
    return StatusRow(
        partition=p,
        node=(info.node_id if info is not None else "") or desired.node_id or "",
        state=state,
        generation=stats.generation if stats is not None else desired.generation,
        aggregates=stats.aggregates if stats is not None else None,
        committed_offset=committed,
        lag=None if committed is None or end is None else max(0, end - committed),
        restarts=(info.restarts if info is not None else 0) + max(0, desired.starts - 1),
        last_commit_age=now - last_commit if last_commit else None,
        error=stats.error if stats is not None else None,
        rebuild=rebuild,
        standby_lags={s.member: _lag(stats, s.stats) for s in standbys if s.info is not None},
        writer=desired.writer,
        epoch=desired.epoch,
        slots=slots,
        drained=drained,
    )


def _lag(writer: PartitionStats | None, standby: PartitionStats | None) -> int | None:
    """Commits the standby is behind its writer (None: one of them did not report)."""
    if writer is None or standby is None:
        return None
    return max(0, writer.seq - standby.seq)


def service_status(
    settings: Settings,
    last: Observation | None,
    desired: dict[int, PartitionRecord],
    *,
    errors: dict[str, str],
    ticks: int,
    rebuilds: dict[int, RebuildProgress],
    routing: RoutingTable | None = None,
    repartition: RepartitionRecord | None = None,
) -> ServiceStatus:
    """The service as of ``last`` (None: no tick observed yet), with the ``desired`` record
    of each partition, the coordinator's step ``errors``, the ``rebuilds``, the published
    ``routing`` table and the latest ``repartition`` (which, with the table, tells the
    drained partitions). A partition the last tick did not
    observe yet (one just added) shows as not observed."""
    counts = None if routing is None else routing.counts(settings.partitions)
    drained = drained_partitions(settings.partitions, routing, repartition)
    rows = [
        status_row(
            p,
            desired[p],
            actual=last.actual[p] if last is not None and p < len(last.actual) else None,
            end=last.ends.get(p) if last is not None else None,
            rebuild=rebuilds.get(p),
            now=last.at if last is not None else time.time(),
            standbys=[a for (q, _), a in sorted(last.standbys.items()) if q == p]
            if last is not None
            else [],
            slots=None if counts is None else counts[p],
            drained=p in drained,
        )
        for p in range(settings.partitions)
    ]
    return ServiceStatus(
        app_id=settings.app_id,
        partitions=settings.partitions,
        bootstrap_servers=settings.bootstrap_servers,
        nodes=last.nodes if last is not None else [],
        ticks=ticks,
        observed_at=last.at if last is not None else None,
        errors=errors,
        rows=rows,
        rebuilds=rebuilds,
        slots=0 if routing is None else routing.slots,
        routing_version=None if routing is None else routing.version,
        repartition=repartition,
    )
