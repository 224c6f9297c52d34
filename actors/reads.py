"""Queries of the committed state, over Ray: an aggregate's public view, asked of a standby
of the partition that owns it (``actors.standby``; its writer as the fallback), and its
history and past states, asked of its partition's history index (``actors.history``).

Routing: an aggregate's partition is the routing's (``actors.routes``): a client's, shared, or
kept by a ``ControlTail`` of the reader's own. The standbys that follow are learnt from the
coordinator (``Coordinator.members``, kept for ``MEMBERS_SECONDS`` and refreshed after any
failure), their handles are kept, and reads go round robin over a partition's standbys. A
standby that fails, does not answer within ``Settings.read_wait_ms`` plus
``STANDBY_GRACE_SECONDS``, or has not reached the read's bounds by then, hands the read to the
writer, which waits for them too. A standby that failed is not asked again before the members
are refreshed. Reads without bounds of one partition's aggregates can go as one call
(``read_batch``), routed the same way.

Typed by the aggregate's view type given at construction (``Aggregate.view_type``): every
view returned is one, checked, so a reader built for another aggregate than the service runs
fails loudly instead of answering with values of the wrong type.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar

import ray
from ray.exceptions import RayTaskError

from actors.history import HistoryBehindError, history_actor
from actors.messages import Members, ViewAt
from actors.ray_state import READS, lookup_actor
from actors.routes import ControlTail, Routes
from topology.envelopes import Position
from topology.history import Elsewhere, HistoryPage, PointInTime
from topology.names import NAMESPACE, Names
from topology.settings import Settings

__all__ = [
    "MEMBERS_SECONDS",
    "STANDBY_GRACE_SECONDS",
    "ForeignPositionError",
    "PositionNotReachedError",
    "Reads",
]

log = logging.getLogger(__name__)

_MAX_HOPS = 64
"""The most history indexes one query crosses (each seam of an account is one hop: a
repartition moves an account at most once per move)."""

_NOT_OWNED_WAIT_SECONDS = 0.02
"""How long a view read waits before asking again a partition that said the account's slot
is not its own, while a move of it is between its handoff and its install."""

V = TypeVar("V")

MEMBERS_SECONDS = 2.0
"""How long the members learnt from the coordinator are used before asking again."""

STANDBY_GRACE_SECONDS = 1.0
"""Beyond its ``read_wait_ms``, how long a standby may take to answer before the writer is
asked instead (a stopped or overloaded standby must not hold a read for its whole timeout)."""


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


class ForeignPositionError(ValueError):
    """A read's ``at_least`` names another partition than the aggregate's, in an application
    without slots (where no move can have put the aggregate elsewhere): a wrong bound."""


class Reads(Generic[V]):
    """The committed state of the aggregates of ``settings``' application, as ``view_type``
    views. Needs the service's Ray cluster (``ray.init`` done). ``routes``: the routing to
    follow (a client's); by default the reader tails the control topic itself, and then
    ``close`` ends that."""

    def __init__(
        self, settings: Settings, view_type: type[V], *, routes: Routes | None = None
    ) -> None:
        self.settings = settings
        self.view_type = view_type
        self._tail: ControlTail | None = None
        if routes is None:
            self._tail = ControlTail(settings.for_api())
            routes = self._tail.routes
        self._routes = routes
        self._names = Names.of(settings)
        self._lock = threading.Lock()
        self._members: Members | None = None
        self._members_at = 0.0
        self._avoid: set[str] = set()  # standbys that failed since the members were learnt
        self._handles: dict[str, Any] = {}
        self._turn = itertools.count()

    @property
    def routes(self) -> Routes:
        """The routing this reader follows."""
        return self._routes

    def close(self) -> None:
        """Stop tailing the control topic (when this reader does it itself)."""
        if self._tail is not None:
            self._tail.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def view(self, aggregate_id: str, timeout: float = 30.0) -> V | None:
        """The aggregate's committed public view, or None when it does not exist, as a
        standby (else the writer) holds it now."""
        found = self._route(aggregate_id, 0, None, timeout)
        return None if found.view is None else self._checked(found.view)

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
        read-your-writes). A standby answers when it reaches them within
        ``Settings.read_wait_ms``, else the writer, which waits as long; still short, raises
        ``PositionNotReachedError``. ``ViewAt.served_by`` says which answered. ``at_least``
        of another partition than the aggregate's is a ``ForeignPositionError``, unless the
        application has slots: then it names where the account was before a move, and any
        state of its owner that holds it has passed it (no commit of a non-owner touches the
        account)."""
        partition = self.partition_of(aggregate_id)
        if at_least is not None and at_least.partition != partition:
            if self._routes.table is None:
                raise ForeignPositionError(
                    f"position {at_least} is of partition {at_least.partition}, "
                    f"not of {aggregate_id!r}'s ({partition})"
                )
            at_least = None
        found = self._route(aggregate_id, min_version, at_least, timeout)
        if not found.reached:
            raise PositionNotReachedError(aggregate_id, found.version, found.position)
        if found.view is not None:
            self._checked(found.view)
        return found

    def _route(
        self, aggregate_id: str, min_version: int, at_least: Position | None, timeout: float
    ) -> ViewAt:
        """The read asked of the aggregate's partition (``_ask``); when that partition does
        not own it (a move made since this reader's table, or under way: between a handoff
        and its install the source and the target each name the other), asked of the owner
        it names, the bound ``at_least`` dropped (it named the old owner), until an owner
        answers or ``timeout`` passes (``PositionNotReachedError``)."""
        deadline = time.monotonic() + timeout
        partition = self.partition_of(aggregate_id)
        asked: set[int] = set()
        while True:
            found = self._ask(partition, aggregate_id, min_version, at_least, timeout)
            if found.owner is None:
                return found
            if time.monotonic() >= deadline:
                raise PositionNotReachedError(aggregate_id, found.version, found.position)
            if found.owner in asked:  # a move in flight: wait for its install
                time.sleep(_NOT_OWNED_WAIT_SECONDS)
            asked.add(partition)
            partition, at_least = found.owner, None
            timeout = max(deadline - time.monotonic(), 0.1)

    def _ask(
        self,
        partition: int,
        aggregate_id: str,
        min_version: int,
        at_least: Position | None,
        timeout: float,
    ) -> ViewAt:
        """The read asked of a standby of ``partition``, then of its writer (which answers
        for a standby behind it, a move it has not followed included)."""
        wait = min(timeout, self.settings.read_wait_ms / 1000 + STANDBY_GRACE_SECONDS)
        for name in self._standbys(partition):
            try:
                call = self._handle(name).read.options(concurrency_group=READS)
                found: ViewAt = _get(call.remote(aggregate_id, min_version, at_least), wait)
            except Exception as e:  # gone, stopped, restarting: the writer answers
                self._avoid_standby(name, e)
                continue
            if found.reached:  # not reached, or not owned there (yet): the writer says
                return found
        args = (aggregate_id, min_version, at_least)
        answer: ViewAt = self._ask_writer(partition, "read", args, timeout)
        return answer

    def read_batch(self, aggregate_ids: list[str], *, timeout: float = 30.0) -> list[ViewAt]:
        """``read`` without bounds of each of ``aggregate_ids``, which lie in one partition
        (ValueError otherwise), in order: one Ray call to a standby of it (its writer as
        the fallback) for them all, answered at one position (but those a move took
        elsewhere, read there one by one)."""
        partitions = {self.partition_of(a) for a in aggregate_ids}
        if len(partitions) != 1:
            raise ValueError(f"a batch of reads lies in one partition, not {len(partitions)}")
        (partition,) = partitions
        wait = min(timeout, self.settings.read_wait_ms / 1000 + STANDBY_GRACE_SECONDS)
        found: list[ViewAt] | None = None
        for name in self._standbys(partition):
            try:
                call = self._handle(name).read_batch.options(concurrency_group=READS)
                found = _get(call.remote(aggregate_ids), wait)
                break
            except Exception as e:  # gone, stopped, restarting: the writer answers
                self._avoid_standby(name, e)
        if found is None:
            found = self._ask_writer(partition, "read_batch", (aggregate_ids,), timeout)
        found = [  # an account moved away from the partition: read where it went
            each if each.owner is None else self._route(a, 0, None, timeout)
            for a, each in zip(aggregate_ids, found, strict=True)
        ]
        for each in found:
            if each.view is not None:
                self._checked(each.view)
        return found

    def _avoid_standby(self, name: str, error: Exception) -> None:
        """A standby that failed is not asked again until the members are learnt anew."""
        log.info("standby %s did not answer (%s); asking the writer", name, error)
        with self._lock:
            self._avoid.add(name)
            self._handles.pop(name, None)

    def _ask_writer(
        self, partition: int, method: str, args: tuple[Any, ...], timeout: float
    ) -> Any:
        """The partition writer's answer to ``method(*args)`` (a query of its ``READS``
        group): through the kept handle, then, if that fails otherwise than by the call's
        own error or timeout, through the writer named now (the members learnt anew: the
        writer may have changed, by a takeover)."""
        for fresh in (False, True):
            if fresh:  # the writer may have changed: a takeover
                self._learn_members(time.monotonic())
            with self._lock:
                known = self._members
            member = 0 if known is None else known.writers.get(partition, 0)
            writer = self._names.member_actor(partition, member)
            handle = self._handle(writer, fresh=fresh)
            call = getattr(handle, method).options(concurrency_group=READS)
            try:
                return _get(call.remote(*args), timeout)
            except (ValueError, TimeoutError, ray.exceptions.GetTimeoutError):
                raise
            except Exception:
                if fresh:
                    raise
                continue  # a kept handle of a writer since replaced: ask the one named now
        raise AssertionError("unreachable")  # pragma: no cover

    def _standbys(self, partition: int) -> list[str]:
        """The names of the partition's following standbys to ask, in this read's turn."""
        now = time.monotonic()
        with self._lock:
            stale = self._members is None or now - self._members_at > MEMBERS_SECONDS
        if stale:
            self._learn_members(now)
        with self._lock:
            members = [] if self._members is None else self._members.standbys.get(partition, [])
            names = [self._names.member_actor(partition, m) for m in members]
            names = [n for n in names if n not in self._avoid]
            turn = next(self._turn)
        if not names:
            return []
        first = turn % len(names)
        return names[first:] + names[:first]

    def _learn_members(self, now: float) -> None:
        """Ask the coordinator which standbys follow (none known when it cannot say)."""
        members: Members | None = None
        coordinator = lookup_actor(self._names.coordinator_actor, NAMESPACE)
        if coordinator is not None:
            try:
                members = ray.get(coordinator.members.remote(), timeout=MEMBERS_SECONDS)
            except Exception as e:
                log.info("the coordinator did not say its members (%s)", e)
        with self._lock:
            self._members, self._members_at, self._avoid = members, now, set()

    def _handle(self, name: str, *, fresh: bool = False) -> Any:
        """The named member's handle, kept (``fresh``: looked up again); ValueError when
        there is no such actor."""
        with self._lock:
            handle = None if fresh else self._handles.get(name)
        if handle is None:
            handle = ray.get_actor(name, namespace=NAMESPACE)
            with self._lock:
                self._handles[name] = handle
        return handle

    def history(
        self, aggregate_id: str, *, after_version: int = 0, limit: int = 100, timeout: float = 30.0
    ) -> HistoryPage[V]:
        """A page of the aggregate's committed events after ``after_version`` (at most
        ``limit``, up to 1,000), each with its resulting view; ``next_after`` pages on. Asked
        of the owner's history index, which folds from the waypoint at or before
        ``after_version``: the cost grows with the page, not with the aggregate's history.
        Where a repartition moved the account, the page follows its history from partition
        to partition (``continue_on``), so it joins without a seam.
        Raises ``HistoryBehindError`` when the index cannot catch up in time,
        ``HistoryDeadlineError`` when it cannot fold the page in time (both: retry)."""
        partition = self.partition_of(aggregate_id)
        entries: list[Any] = []
        after = after_version
        for _ in range(_MAX_HOPS):
            index = history_actor(self.settings.app_id, partition)
            page: HistoryPage[Any] = _get(
                index.history.remote(aggregate_id, after, limit - len(entries)), timeout
            )
            entries += page.entries
            if page.continue_on is None or len(entries) == limit or page.next_after is None:
                break
            partition, after = page.continue_on, page.next_after
        else:
            raise HistoryBehindError(f"the history of {aggregate_id!r} did not join: retry")
        for entry in entries:
            self._checked(entry.view)
        return HistoryPage(aggregate_id=aggregate_id, entries=entries, next_after=page.next_after)

    def state_at(
        self, aggregate_id: str, at: datetime | int, *, timeout: float = 30.0
    ) -> PointInTime[V] | None:
        """The aggregate as committed at time ``at`` (a datetime; naive means UTC) or after
        its event number ``at`` (an int: a version); None when it did not exist then. A time
        is found by binary search, the state folded from the waypoint before it: the cost
        does not grow with the aggregate's history. Where a repartition moved the account,
        the query follows it to the partition that held it then. Raises as ``history``
        does."""
        partition = self.partition_of(aggregate_id)
        if isinstance(at, datetime):
            stamp = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            asked: dict[str, int | None] = {"at_ms": int(stamp.timestamp() * 1000)}
        else:
            asked = {"version": at}
        for _ in range(_MAX_HOPS):
            index = history_actor(self.settings.app_id, partition)
            found: PointInTime[Any] | Elsewhere | None = _get(
                index.state_at.remote(aggregate_id, **asked), timeout
            )
            if not isinstance(found, Elsewhere):
                break
            partition = found.partition
            if "at_ms" in asked:
                asked["upto"] = found.upto
        else:
            raise HistoryBehindError(f"the history of {aggregate_id!r} did not join: retry")
        if found is not None:
            self._checked(found.view)
        return found

    def partition_of(self, aggregate_id: str) -> int:
        """The partition that owns ``aggregate_id``."""
        return self._routes.router.partition_of(aggregate_id.encode())

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
