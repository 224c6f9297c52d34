"""Queries of the committed state, over Ray: an aggregate's public view, asked of the partition
actor that owns it, and its history and past states, asked of its partition's history index
(``actors.history``).

Typed by the aggregate's view type given at construction (``Aggregate.view_type``): every
view returned is one, checked, so a reader built for another aggregate than the service runs
fails loudly instead of answering with values of the wrong type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import ray
from ray.exceptions import RayTaskError

from actors.history import history_actor
from actors.messages import ViewAt
from actors.ray_state import READS, partition_actor
from topology.envelopes import Position
from topology.history import HistoryPage, PointInTime
from topology.partitioner import partition_for
from topology.settings import Settings

__all__ = ["PositionNotReachedError", "Reads"]

V = TypeVar("V")


class PositionNotReachedError(Exception):
    """A read's bounds (a version, a position, at least) that the partition's committed
    state did not reach within its wait: they name what it has not committed (yet).
    ``version`` and ``position`` are where the state stood."""

    def __init__(self, aggregate_id: str, version: int, position: Position) -> None:
        super().__init__(
            f"{aggregate_id!r} is at version {version}, partition position {position}: "
            "not the version or position asked for"
        )
        self.version = version
        self.position = position


class Reads(Generic[V]):
    """The committed state of the aggregates of ``settings``' application, as ``view_type``
    views. Needs the service's Ray cluster (``ray.init`` done)."""

    def __init__(self, settings: Settings, view_type: type[V]) -> None:
        self.settings = settings
        self.view_type = view_type

    def view(self, aggregate_id: str, timeout: float = 30.0) -> V | None:
        """The aggregate's committed public view, or None when it does not exist."""
        actor = partition_actor(self.settings.app_id, self.partition_of(aggregate_id))
        found = ray.get(
            actor.get.options(concurrency_group=READS).remote(aggregate_id), timeout=timeout
        )
        return None if found is None else self._checked(found)

    def read(
        self,
        aggregate_id: str,
        *,
        min_version: int = 0,
        at_least: Position | None = None,
        timeout: float = 30.0,
    ) -> ViewAt:
        """The aggregate's committed view (``ViewAt.view``: a ``view_type``, or None) and the
        position it was read at, once its version is at least ``min_version`` and its
        partition's position at least ``at_least`` (a reply's ``version`` and ``position``:
        read-your-writes). The partition waits for them up to ``Settings.read_wait_ms``;
        still short, raises ``PositionNotReachedError``. ``at_least`` of another partition
        than the aggregate's is a ValueError."""
        partition = self.partition_of(aggregate_id)
        if at_least is not None and at_least.partition != partition:
            raise ValueError(
                f"position {at_least} is of partition {at_least.partition}, "
                f"not of {aggregate_id!r}'s ({partition})"
            )
        actor = partition_actor(self.settings.app_id, partition)
        call = actor.read.options(concurrency_group=READS)
        found: ViewAt = _get(call.remote(aggregate_id, min_version, at_least), timeout)
        if not found.reached:
            raise PositionNotReachedError(aggregate_id, found.version, found.position)
        if found.view is not None:
            self._checked(found.view)
        return found

    def history(
        self, aggregate_id: str, *, after_version: int = 0, limit: int = 100, timeout: float = 30.0
    ) -> HistoryPage[V]:
        """A page of the aggregate's committed events after ``after_version`` (at most
        ``limit``, up to 1,000), each with its resulting view; ``next_after`` pages on. Asked
        of the partition's history index, which folds from the waypoint at or before
        ``after_version``: the cost grows with the page, not with the aggregate's history.
        Raises ``HistoryBehindError`` when the index cannot catch up in time,
        ``HistoryDeadlineError`` when it cannot fold the page in time (both: retry)."""
        index = history_actor(self.settings.app_id, self.partition_of(aggregate_id))
        page: HistoryPage[Any] = _get(
            index.history.remote(aggregate_id, after_version, limit), timeout
        )
        for entry in page.entries:
            self._checked(entry.view)
        return page

    def state_at(
        self, aggregate_id: str, at: datetime | int, *, timeout: float = 30.0
    ) -> PointInTime[V] | None:
        """The aggregate as committed at time ``at`` (a datetime; naive means UTC) or after
        its event number ``at`` (an int: a version); None when it did not exist then. A time
        is found by binary search, the state folded from the waypoint before it: the cost
        does not grow with the aggregate's history. Raises as ``history`` does."""
        index = history_actor(self.settings.app_id, self.partition_of(aggregate_id))
        if isinstance(at, datetime):
            stamp = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            ref = index.state_at.remote(aggregate_id, at_ms=int(stamp.timestamp() * 1000))
        else:
            ref = index.state_at.remote(aggregate_id, version=at)
        found: PointInTime[Any] | None = _get(ref, timeout)
        if found is not None:
            self._checked(found.view)
        return found

    def partition_of(self, aggregate_id: str) -> int:
        """The partition that owns ``aggregate_id``."""
        return partition_for(aggregate_id.encode(), self.settings.partitions)

    def _checked(self, view: object) -> V:
        if not isinstance(view, self.view_type):
            raise TypeError(
                f"expected a {self.view_type.__name__} view, the service answered a "
                f"{type(view).__name__}: does it run another aggregate?"
            )
        return view


def _get(ref: Any, timeout: float) -> Any:
    """``ray.get``, raising the actor's own error (``ValueError``, ``HistoryBehindError``,
    ``HistoryDeadlineError``) rather than Ray's wrapper of it."""
    try:
        return ray.get(ref, timeout=timeout)
    except RayTaskError as e:
        original = getattr(e, "cause", None)
        if isinstance(original, Exception):
            raise original from None
        raise
