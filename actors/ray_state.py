"""What Ray knows about nodes and named actors, read without the dashboard.

Ray's public state API needs the dashboard, which the service does not require; the node
list is public (``ray.nodes``) and an actor's state, node and restart count come from the
GCS actor table (``ray._private.state``, keyed by the handle's actor id). Everything private
is confined to this module, and Ray's state names become a ``RayState`` here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import ray

from topology.names import NAMESPACE, Names

__all__ = [
    "CONTROL",
    "READS",
    "TAKEOVER",
    "ActorInfo",
    "RayState",
    "alive_nodes",
    "current_node_id",
    "describe_actor",
    "lookup_actor",
    "partition_actor",
    "partition_actors",
    "writer_member",
]

log = logging.getLogger(__name__)

READS = "reads"
"""The concurrency group of a partition actor's queries (``get``, ``read``): they run on
threads of their own (a read may wait for a position), while its other quick asks (``stats``,
``position``, ``ready``) keep the default group, one at a time."""

CONTROL = "control"
"""The concurrency group of a member's moves that wait on its loop or its broker (``pause``,
``resume``, ``switch_generation``, ``unblock``, ``stop``), one at a time in the order they
come: while one waits (a pause behind a commit the broker does not answer, up to its
timeout), the quick asks of the default group (``stats``, ``position``, a pid) still answer."""

TAKEOVER = "takeover"
"""The concurrency group of a member's ``promote``: a takeover never waits behind the
coordinator's other calls to the member (its ``stats`` of the last tick)."""


class RayState(StrEnum):
    """An actor's state in Ray's actor table."""

    DEPENDENCIES_UNREADY = "DEPENDENCIES_UNREADY"
    PENDING_CREATION = "PENDING_CREATION"
    ALIVE = "ALIVE"
    RESTARTING = "RESTARTING"
    DEAD = "DEAD"

    @property
    def starting(self) -> bool:
        """Being created: not yet placed, or its constructor not yet begun."""
        return self in (RayState.DEPENDENCIES_UNREADY, RayState.PENDING_CREATION)


@dataclass(frozen=True)
class ActorInfo:
    """A named actor as Ray sees it; ``node_id`` is empty until it is placed."""

    handle: Any
    state: RayState
    node_id: str
    restarts: int


def alive_nodes(resource: str = "") -> list[str]:
    """The ids of the Ray nodes that are alive (and offer ``resource``, when given), sorted."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return sorted(
        str(n["NodeID"])
        for n in nodes
        if n.get("Alive") and (not resource or n.get("Resources", {}).get(resource, 0) > 0)
    )


def current_node_id() -> str:
    """The node this process runs on."""
    node: str = ray.get_runtime_context().get_node_id()
    return node


def lookup_actor(name: str, namespace: str) -> Any | None:
    """The handle of the named actor, or None when there is none (or it is dead)."""
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


def writer_member(app_id: str, partition: int, timeout: float = 30.0) -> int:
    """The member that writes ``partition`` as its coordinator recorded it (0 when there is
    no coordinator: a service without takeovers)."""
    names = Names(app_id)
    coordinator = lookup_actor(names.coordinator_actor, NAMESPACE)
    if coordinator is None:
        return 0
    member: int = ray.get(coordinator.writer_of.remote(partition), timeout=timeout)
    return member


def partition_actor(app_id: str, partition: int) -> Any:
    """The live actor that writes ``partition``, its recorded writer member (raises
    ValueError when there is none). Everything that looks for "the writer" asks here."""
    name = Names(app_id).member_actor(partition, writer_member(app_id, partition))
    return ray.get_actor(name, namespace=NAMESPACE)


def partition_actors(app_id: str, partitions: int) -> list[Any]:
    """The live writers of partitions ``0 .. partitions - 1`` (ValueError when one is
    missing)."""
    return [partition_actor(app_id, p) for p in range(partitions)]


def describe_actor(name: str, namespace: str) -> ActorInfo | None:
    """The named actor's state, node and restart count; None when there is no such actor."""
    handle = lookup_actor(name, namespace)
    if handle is None:
        return None
    try:
        from ray._private import state

        info: dict[str, Any] = state.actors(handle._actor_id.hex())
    except Exception as e:  # the private API moved: still usable, only less detailed
        log.debug("actor table unavailable: %s", e)
        return ActorInfo(handle, RayState.ALIVE, "", 0)
    node = str(info.get("Address", {}).get("NodeID", ""))
    return ActorInfo(
        handle=handle,
        state=_state(info.get("State")),
        node_id="" if not node.strip("0") else node,
        restarts=int(info.get("NumRestarts", 0)),
    )


def _state(name: object) -> RayState:
    """Ray's state name; one this module does not know is read as ALIVE (as when the
    actor table is unavailable: less detailed, still usable)."""
    try:
        return RayState(str(name))
    except ValueError:
        log.debug("unknown Ray actor state %r: read as ALIVE", name)
        return RayState.ALIVE
