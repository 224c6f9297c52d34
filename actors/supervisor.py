"""Doing what the placement plan decided: start, retire and observe partition actors (writers
and standbys), and call them all at once (``answers``: the coordinator's observe and resume
steps never wait on one actor alone).

A partition actor is the detached Ray actor ``{app}-partition-{p}`` in namespace
``eventledger`` (``Names.partition_actor``), pinned to a node with hard node affinity:
Ray restarts a crashed one in place (up to ``RAY_RESTARTS`` times), and when its node dies Ray
gives up on it and the coordinator places a successor. Invariant: a successor is created
only after Ray has released the predecessor's name (it is dead), and it fences any process of
the predecessor Ray lost track of with ``init_transactions`` — never two live writers.
A standby (``start_standby``, ``Names.member_actor(p, m)`` for m >= 1) is placed the same way
and never writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.member import Member
from actors.messages import PartitionStats, PartitionStatus
from actors.ray_state import (
    CONTROL,
    READS,
    TAKEOVER,
    ActorInfo,
    RayState,
    describe_actor,
    lookup_actor,
)
from topology.control import PartitionRecord
from topology.names import NAMESPACE, Names
from topology.placement import ActorPhase, Observed
from topology.protocol import AnyAggregate
from topology.settings import Settings

__all__ = [
    "ANSWER_SECONDS",
    "RAY_RESTARTS",
    "Observation",
    "PartitionActual",
    "answers",
    "observe_members",
    "observe_partitions",
    "reserved",
    "retire",
    "start_partition",
    "start_standby",
]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

RAY_RESTARTS = 3
"""Crashes Ray handles by itself (in place, same node); beyond that the coordinator does."""

READ_CONCURRENCY = 16
"""The queries a partition actor runs at once (threads of its `READS` concurrency group)."""

ANSWER_SECONDS = 2.0
"""How long the coordinator's tick waits for the actors' answers to its calls (stats,
resume): what did not answer by then is observed again next tick."""

_BROKEN_STATUSES = frozenset(
    {PartitionStatus.FENCED, PartitionStatus.FAILED, PartitionStatus.STOPPED}
)


@dataclass(frozen=True)
class PartitionActual:
    """One partition member's actor as observed this tick (member 0: the writer): Ray's view
    and the actor's own stats (empty when it did not answer in time)."""

    partition: int
    info: ActorInfo | None
    stats: PartitionStats | None
    member: int = 0

    @property
    def observed(self) -> Observed:
        info = self.info
        if info is None or info.state is RayState.DEAD:
            return Observed(ActorPhase.MISSING)
        node = info.node_id or None
        if info.state.starting:
            return Observed(ActorPhase.STARTING, node)
        if info.state is RayState.RESTARTING:
            return Observed(ActorPhase.RESTARTING, node)
        status = self.stats.status if self.stats is not None else None
        if status in _BROKEN_STATUSES:
            return Observed(ActorPhase.BROKEN, node)
        if status is PartitionStatus.RESTORING:
            return Observed(ActorPhase.STARTING, node)
        return Observed(ActorPhase.RUNNING, node)


@dataclass(frozen=True)
class Observation:
    """What one tick of the coordinator observed, at time ``at``: the alive nodes, every
    partition's writer, the end offset of each commands partition, and each partition's
    desired record then (a step acts on a partition only while its record is still that);
    ``standbys``: the standby members that may exist, by (partition, member)."""

    nodes: list[str]
    actual: list[PartitionActual]
    ends: dict[int, int]
    at: float
    desired: dict[int, PartitionRecord]
    standbys: dict[tuple[int, int], PartitionActual] = field(default_factory=dict)


def answers(refs: dict[K, Any], timeout: float) -> tuple[dict[K, Any], dict[K, str]]:
    """Wait at most ``timeout`` seconds, for all together, for calls made on partition
    actors (partition, or (partition, member) → ObjectRef): the results of those that
    answered, and why each other did not (its error, or no answer in time)."""
    if not refs:
        return {}, {}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    answered = set(ready)
    results: dict[K, Any] = {}
    missing: dict[K, str] = {}
    for p, ref in refs.items():
        if ref not in answered:
            missing[p] = f"no answer in {timeout:g}s"
            continue
        try:
            results[p] = ray.get(ref)  # answered: returns at once, or raises its error
        except Exception as e:
            missing[p] = f"{type(e).__name__}: {e}"
    return results, missing


def observe_partitions(
    app_id: str, partitions: int, timeout: float = ANSWER_SECONDS
) -> list[PartitionActual]:
    """Every partition's writer: its Ray state and, for the live ones that answer within
    ``timeout`` seconds, their stats."""
    found = observe_members(app_id, [(p, 0) for p in range(partitions)], timeout)
    return [found[(p, 0)] for p in range(partitions)]


def observe_members(
    app_id: str, members: Sequence[tuple[int, int]], timeout: float = ANSWER_SECONDS
) -> dict[tuple[int, int], PartitionActual]:
    """The actors of ``members`` ((partition, member) pairs), as ``observe_partitions``
    does, all awaited together."""
    names = Names(app_id)
    infos = {(p, m): describe_actor(names.member_actor(p, m), NAMESPACE) for p, m in members}
    refs = {
        key: info.handle.stats.remote()
        for key, info in infos.items()
        if info is not None and info.state is RayState.ALIVE
    }
    stats, missing = answers(refs, timeout)
    for (p, m), why in missing.items():
        log.info("partition %d member %d did not answer: %s", p, m, why)
    return {(p, m): PartitionActual(p, infos[(p, m)], stats.get((p, m)), m) for p, m in members}


def reserved(settings: Settings, aggregates: int = 0) -> dict[str, Any]:
    """The Ray options by which an actor holding a partition's state reserves its node: one
    slot of the partition resource, and memory for ``aggregates`` aggregates."""
    wanted = settings.reservation(aggregates)
    return {"resources": wanted.resources, "memory": wanted.memory}


def start_partition(
    settings: Settings,
    partition: int,
    node_id: str,
    aggregate: AnyAggregate,
    aggregates: int = 0,
    *,
    member: int = 0,
) -> Any:
    """Create the partition's writer, member ``member`` (the recorded writer), on ``node_id``
    (returns at once; the constructor fences and restores in the background), reserving the
    partition resource and memory for the ``aggregates`` it last held (``reserved``). Its
    generation and paused flag come from the desired state. Raises ValueError when an actor
    of that name still exists."""
    return _start_member(
        settings, partition, member, node_id, aggregate=aggregate, aggregates=aggregates
    )


def start_standby(
    settings: Settings,
    partition: int,
    member: int,
    node_id: str,
    *,
    aggregate: AnyAggregate,
    aggregates: int = 0,
) -> Any:
    """Create standby ``member`` of the partition on ``node_id`` (returns at once; the
    constructor restores in the background), reserving as a writer does (``reserved``): any
    standby may come to hold the partition's writes. Raises ValueError when an actor of that
    name still exists."""
    return _start_member(
        settings, partition, member, node_id, aggregate=aggregate, aggregates=aggregates
    )


def _start_member(
    settings: Settings,
    partition: int,
    member: int,
    node_id: str,
    *,
    aggregate: AnyAggregate,
    aggregates: int,
) -> Any:
    """A ``Member`` actor: the writer if the control record names it, else a standby (its
    constructor decides, in every run, so Ray's restarts follow the desired state too)."""
    # queries (which may wait up to read_wait_ms for a position) on threads of their own,
    # never blocking the coordinator's calls or each other, and a promotion on its own
    # (Ray takes the groups here only; its overloads omit the documented keyword), and the
    # moves that wait on the loop on one more, so the quick asks never queue behind them
    groups = {READS: READ_CONCURRENCY, TAKEOVER: 1, CONTROL: 1}
    remote: Any = ray.remote(concurrency_groups=groups)(Member)  # type: ignore[call-overload]
    name = Names.of(settings).member_actor(partition, member)
    return remote.options(**_member_options(settings, name, node_id, aggregates)).remote(
        settings, partition, member, aggregate
    )


def _member_options(settings: Settings, name: str, node_id: str, aggregates: int) -> dict[str, Any]:
    """Ray options every member of a partition starts with: detached under ``name``, pinned
    to ``node_id``, restarted by Ray, reserving as a writer does (``reserved``)."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": RAY_RESTARTS,
        "max_task_retries": -1,
        "num_cpus": 0,
        **reserved(settings, aggregates),
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
    }


def retire(name: str, *, graceful: bool, timeout: float = 30.0) -> None:
    """End the named actor for good and wait until Ray has released its name. Graceful:
    let it finish the batch in flight and close its clients first."""
    handle = lookup_actor(name, NAMESPACE)
    if handle is None:
        return
    if graceful:
        try:
            ray.get(handle.stop.remote(), timeout=timeout)
        except Exception as e:  # dead or stuck: killing it is what we want anyway
            log.warning("%s did not stop cleanly (%s); killing it", name, type(e).__name__)
    ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = describe_actor(name, NAMESPACE)
        if info is None or info.state is RayState.DEAD:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{name} is still registered {timeout:.0f}s after being killed")
