"""Where partition actors should run: a pure plan from desired and observed state.

The coordinator observes (which partition actors exist, in what phase, on which node; which
Ray nodes are alive), calls `plan`, and executes the actions. Deciding is kept apart from
doing so that every placement rule is tested without Ray or Kafka.

Rules, in order:

1. a partition without an actor gets one (``Start``), on its previous node if that node is
   alive and not above the fair share, else on the least loaded alive node;
2. an actor that is broken (its loop stopped: fenced or failed) or stranded (its node is no
   longer alive) is replaced (``Replace``: the executor kills it and waits until Ray has
   released its name before starting the successor, so there are never two live writers;
   the successor's ``init_transactions`` fences a zombie that Ray lost track of);
   Partitions in ``paced`` (those a repartition adds) start one at a time: a missing one
   gets its ``Start`` only while no other of them is starting. Each start is a new process
   whose imports take a core for seconds, and the running partitions answer through it;
3. only when every partition runs and nothing else is to be done, at most ``max_moves``
   actors move from the most to the least loaded node while the two differ by more than one
   (``Move``: stop, then start elsewhere; the move costs one restore). Partitions in
   ``frozen`` (paused, or being rebuilt) never move.

Standbys (``plan_standbys``): each partition has ``count`` standby members, the numbers
``0..count`` but its writer's (member 0 writes until a takeover). A missing one is started
(``StartStandby``) on an alive node other than its writer's when there is one: the node it was
placed on before (its id memory is there), else the least loaded, counting writers and
standbys alike (each holds the partition's state). A broken or stranded one, one beyond
``count``, and one beside its writer while another node is alive are retired
(``RetireStandby``); the next plan starts it again where it belongs.

Takeover (``plan_takeover``): when a partition's writer dies, the standby that takes over is
one FOLLOWING on an alive node and on the desired snapshot generation, the one with the
smallest lag (ties: the lowest member), as Kafka Streams ranks warm replicas. A promotion is
correct at any lag (it reads what is left of the tail), only slower, so an unplanned takeover
takes the best one whatever its lag. No candidate: no takeover (the writer is restarted or
replaced as before). The takeover's epoch is one above the recorded one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Action",
    "ActorPhase",
    "Candidate",
    "Move",
    "Observed",
    "Replace",
    "RetireStandby",
    "StandbyAction",
    "Start",
    "StartStandby",
    "Takeover",
    "loads",
    "plan",
    "plan_standbys",
    "plan_takeover",
    "standby_members",
]


class ActorPhase(StrEnum):
    """What the coordinator sees of a partition's actor."""

    MISSING = "missing"  # no actor by that name (never started, or dead beyond restarts)
    STARTING = "starting"  # being created: constructor (fence + restore) still running
    RUNNING = "running"  # alive, its loop runs (it may be paused)
    RESTARTING = "restarting"  # Ray is restarting it after a crash
    BROKEN = "broken"  # alive but its loop has stopped (fenced, failed): must be replaced


@dataclass(frozen=True)
class Observed:
    """A partition actor as observed: its phase and node (None when unknown)."""

    phase: ActorPhase
    node_id: str | None = None


@dataclass(frozen=True)
class Start:
    partition: int
    node_id: str


@dataclass(frozen=True)
class Replace:
    partition: int
    node_id: str
    reason: str


@dataclass(frozen=True)
class Move:
    partition: int
    source: str
    target: str


Action = Start | Replace | Move


@dataclass(frozen=True)
class StartStandby:
    partition: int
    member: int
    node_id: str


@dataclass(frozen=True)
class RetireStandby:
    partition: int
    member: int
    reason: str


StandbyAction = StartStandby | RetireStandby


def loads(
    observed: Mapping[int, Observed], alive: Sequence[str], placed: Mapping[int, str | None]
) -> dict[str, int]:
    """Actors per alive node: those that exist (not missing or broken) on an alive node.
    A starting actor whose node is not known yet counts on the node it was placed on."""
    counts = dict.fromkeys(alive, 0)
    for partition, seen in observed.items():
        if seen.phase in (ActorPhase.MISSING, ActorPhase.BROKEN):
            continue
        node = seen.node_id or placed.get(partition)
        if node in counts:
            counts[node] += 1
    return counts


def plan(
    partitions: int,
    observed: Mapping[int, Observed],
    alive: Sequence[str],
    placed: Mapping[int, str | None],
    *,
    frozen: Set[int] = frozenset(),
    paced: Set[int] = frozenset(),
    max_moves: int = 1,
) -> list[Action]:
    """The actions that bring ``observed`` (partition → actor) towards one live actor per
    partition, spread evenly over ``alive`` nodes. ``placed`` is where each partition was
    last placed (the desired state); a partition missing from ``observed`` counts as
    MISSING; of ``paced`` at most one is STARTING at a time. Deterministic: ties go to the
    lowest node id and partition number."""
    nodes = sorted(set(alive))
    if not nodes:
        return []
    seen = {p: observed.get(p, Observed(ActorPhase.MISSING)) for p in range(partitions)}
    load = loads(seen, nodes, placed)
    share = -(-partitions // len(nodes))  # ceil: the most any node should hold
    actions: list[Action] = []

    def least_loaded(preferred: str | None) -> str:
        if preferred in load and load[preferred] < share:
            return preferred
        return min(nodes, key=lambda n: (load[n], n))

    pacing = any(seen[p].phase is ActorPhase.STARTING for p in paced if p in seen)
    for p in range(partitions):
        current = seen[p]
        if current.phase is ActorPhase.MISSING:
            if p in paced:
                if pacing:
                    continue
                pacing = True
            node = least_loaded(placed.get(p))
            actions.append(Start(p, node))
            load[node] += 1
        elif current.phase is ActorPhase.BROKEN:
            node = least_loaded(current.node_id or placed.get(p))
            actions.append(Replace(p, node, "its loop has stopped"))
            load[node] += 1
        elif current.node_id is not None and current.node_id not in load:
            node = least_loaded(None)
            actions.append(Replace(p, node, f"its node {current.node_id[:8]} is gone"))
            load[node] += 1
    if actions or any(s.phase is not ActorPhase.RUNNING for s in seen.values()):
        return actions
    for _ in range(max_moves):
        busiest = max(nodes, key=lambda n: (load[n], n))
        idlest = min(nodes, key=lambda n: (load[n], n))
        if load[busiest] - load[idlest] <= 1:
            break
        movable = [
            p
            for p, s in seen.items()
            if s.node_id == busiest and p not in frozen and not _moving(actions, p)
        ]
        if not movable:
            break
        p = max(movable)
        actions.append(Move(p, busiest, idlest))
        load[busiest] -= 1
        load[idlest] += 1
    return actions


def _moving(actions: Sequence[Action], partition: int) -> bool:
    return any(a.partition == partition for a in actions)


def standby_members(count: int, writer: int = 0) -> list[int]:
    """The member numbers of a partition's ``count`` standbys when member ``writer``
    writes: ``0..count`` but the writer's (a writer beyond ``count``: the first ``count``)."""
    return [m for m in range(count + 1) if m != writer][:count]


def plan_standbys(
    count: int,
    writers: Mapping[int, Observed],
    standbys: Mapping[tuple[int, int], Observed],
    alive: Sequence[str],
    placed: Mapping[tuple[int, int], str | None],
    *,
    writer_members: Mapping[int, int] | None = None,
) -> list[StandbyAction]:
    """The actions that give every partition of ``writers`` (partition → its writer as
    observed) its ``standby_members`` (``writer_members``: partition → the member that
    writes, 0 when left out); ``standbys`` maps (partition, member) to what is observed of
    the other members that may exist (missing ones may be left out), ``placed`` to where
    each was last placed. Deterministic: ties go to the lowest node id."""
    writing = writer_members or {}
    nodes = sorted(set(alive))
    if not nodes:
        return []
    load = dict.fromkeys(nodes, 0)
    for seen in [*writers.values(), *standbys.values()]:
        if seen.phase not in (ActorPhase.MISSING, ActorPhase.BROKEN) and seen.node_id in load:
            load[seen.node_id] += 1
    actions: list[StandbyAction] = []
    for (p, m), seen in sorted(standbys.items()):
        if seen.phase in (ActorPhase.MISSING, ActorPhase.STARTING, ActorPhase.RESTARTING):
            continue
        writer = writers[p].node_id if p in writers else None
        if m == writing.get(p, 0):
            continue  # its writer, observed with the writers
        if m not in standby_members(count, writing.get(p, 0)):
            why = f"only {count} standbys are wanted"
        elif seen.phase is ActorPhase.BROKEN:
            why = "its loop has stopped"
        elif seen.node_id is not None and seen.node_id not in load:
            why = f"its node {seen.node_id[:8]} is gone"
        elif seen.node_id is not None and seen.node_id == writer and len(nodes) > 1:
            why = "it runs beside its writer while another node is alive"
        else:
            continue
        actions.append(RetireStandby(p, m, why))
    retiring = {(a.partition, a.member) for a in actions}
    for p in sorted(writers):
        writer = writers[p].node_id
        for m in standby_members(count, writing.get(p, 0)):
            seen = standbys.get((p, m), Observed(ActorPhase.MISSING))
            if seen.phase is not ActorPhase.MISSING or (p, m) in retiring:
                continue
            others = [n for n in nodes if n != writer] or nodes
            before = placed.get((p, m))
            node = before if before in others else min(others, key=lambda n: (load[n], n))
            actions.append(StartStandby(p, m, node))
            load[node] += 1
    return actions


@dataclass(frozen=True)
class Candidate:
    """A standby as the takeover plan sees it: ``lag`` is how many records of the
    partition's snapshots it has still to apply (the log's end minus its position)."""

    member: int
    node_id: str | None
    following: bool
    generation: int
    lag: int


@dataclass(frozen=True)
class Takeover:
    """Member ``member`` becomes partition ``partition``'s writer at ``epoch``."""

    partition: int
    member: int
    epoch: int


def plan_takeover(
    partition: int,
    epoch: int,
    generation: int,
    candidates: Sequence[Candidate],
    alive: Sequence[str],
) -> Takeover | None:
    """Which standby takes over partition ``partition`` (recorded at ``epoch``, desired
    snapshot ``generation``) now that its writer is dead: the FOLLOWING one on an alive node
    and on ``generation`` with the smallest lag (ties: the lowest member), at ``epoch + 1``;
    None when no standby qualifies (the writer's actor is restarted or replaced instead)."""
    nodes = set(alive)
    fit = [
        c for c in candidates if c.following and c.node_id in nodes and c.generation == generation
    ]
    if not fit:
        return None
    best = min(fit, key=lambda c: (c.lag, c.member))
    return Takeover(partition, best.member, epoch + 1)
