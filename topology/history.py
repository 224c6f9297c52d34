"""An aggregate's history and its state at a point in time, folded from its own events.

Pure: given an aggregate's event records in sequence order (the history index's values, see
``actors.history``) from a starting ``Waypoint`` on, fold them with the aggregate's ``evolve``
and upcasters. A waypoint is the state after event n·``WAYPOINT_EVERY``, kept in the index
beside the events (derived: ``waypoints`` folds them, as the index does when it indexes the
events), so a page or a point folds from the nearest waypoint at or before it: at most
``WAYPOINT_EVERY`` events more than it answers, however long the aggregate's history. A fold
from a waypoint equals the fold from the first event (``evolve`` is a function of the state
and the event). The views are the aggregate's public view after each event.

A fold checks its ``QueryDeadline`` as it goes and raises ``HistoryDeadlineError`` past it,
so no query holds the index longer than its deadline, and none answers partially.

After a repartition an account's events lie on more than one partition, joined by seams
(``Seam``, from the markers of ``topology.moves``): each partition's index holds its own
stints of the account's sequences, ``holder`` says which partition holds an event, and a
query that reaches the end of a stint names the partition that goes on (``continue_on``,
``Elsewhere``). Sequences stay contiguous across partitions, so the pages join without a seam.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, Generic, TypeVar

import msgspec

from topology.codec.aggregate import Codec
from topology.codec.wire import CodecError
from topology.envelopes import EventEnvelope

__all__ = [
    "MAX_PAGE",
    "ORIGIN",
    "WAYPOINT_EVERY",
    "Elsewhere",
    "HistoryDeadlineError",
    "HistoryEntry",
    "HistoryPage",
    "PointInTime",
    "QueryDeadline",
    "Seam",
    "Waypoint",
    "check_page",
    "departure_after",
    "history_page",
    "holder",
    "last_at_or_before",
    "state_at",
    "stint_start",
    "waypoints",
]

MAX_PAGE: Final = 1_000
"""The most entries one page holds."""

WAYPOINT_EVERY: Final = 100
"""The index keeps an aggregate's state after each event whose sequence is a multiple of this."""

_CHECK_EVERY: Final = 64  # events folded between two looks at the clock

V = TypeVar("V")
"""The aggregate's public view type."""


class HistoryDeadlineError(TimeoutError):
    """A query's fold ran past its deadline (the index is busy): retry; nothing partial is
    answered."""


class HistoryEntry(msgspec.Struct, Generic[V], frozen=True, kw_only=True):
    """One event of an aggregate: its sequence (the version after it), the partition's time
    when it was committed (epoch ms), the command that caused it and who sent that command
    (`principal`, None: not said), its type and fields, and the aggregate's public view after
    it."""

    sequence: int
    timestamp_ms: int
    command_id: str
    type: str
    event: Any
    view: V
    principal: str | None = None


class HistoryPage(msgspec.Struct, Generic[V], frozen=True, kw_only=True):
    """Entries with sequence > the page's ``after_version``, in order; ``next_after`` is the
    ``after_version`` of the next page (None: this is the last one). ``continue_on``: the
    events after ``next_after`` are on that partition (a repartition moved the account;
    None: ask the account's owner as usual)."""

    aggregate_id: str
    entries: list[HistoryEntry[V]]
    next_after: int | None
    continue_on: int | None = None


class Seam(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Where an account's history crosses partitions, as one partition's index saw it:
    ``arrived`` (its events up to ``sequence`` are on ``partition``, the later ones here,
    until a departure) or departed (its events after ``sequence`` are on ``partition``)."""

    sequence: int
    arrived: bool
    partition: int


class Elsewhere(msgspec.Struct, frozen=True, gc=False):
    """A point-in-time query this partition cannot answer: ask ``partition``, considering
    the account's events up to ``upto`` only (its stint there ends there)."""

    partition: int
    upto: int


class PointInTime(msgspec.Struct, Generic[V], frozen=True, kw_only=True):
    """The aggregate as it was after its event ``version`` (committed at ``timestamp_ms``)."""

    aggregate_id: str
    version: int
    timestamp_ms: int
    view: V


class Waypoint(msgspec.Struct, frozen=True, gc=False):
    """The aggregate's state after its event ``sequence``: where a fold may start."""

    sequence: int
    state: Any


ORIGIN: Final = Waypoint(0, None)
"""The start of every aggregate's history: no event, no state."""


class QueryDeadline(msgspec.Struct, frozen=True, gc=False):
    """A fold stops once ``clock()`` (seconds) is past ``at``."""

    at: float
    clock: Callable[[], float]

    def check(self, aggregate_id: str, sequence: int) -> None:
        """Raise HistoryDeadlineError when the deadline has passed."""
        if self.clock() > self.at:
            raise HistoryDeadlineError(
                f"history of {aggregate_id!r}: the query ran past its deadline at event "
                f"{sequence}: retry"
            )


def _states(
    codec: Codec, records: Iterable[bytes], start: Waypoint, deadline: QueryDeadline | None
) -> Iterator[tuple[EventEnvelope, Any, Any]]:
    """Each event after ``start`` with the state after it. Raises CodecError when the
    sequences are not ``start.sequence`` + 1, + 2, ... (an index that lost or repeats an event
    must not answer)."""
    evolve = codec.aggregate.evolve
    state = start.state
    expected = start.sequence + 1
    for data in records:
        envelope, event = codec.events.decode(data)
        if envelope.sequence != expected:
            raise CodecError(
                f"history of {envelope.aggregate_id!r}: sequence {envelope.sequence} where "
                f"{expected} was expected"
            )
        if deadline is not None and expected % _CHECK_EVERY == 0:
            deadline.check(envelope.aggregate_id, expected)
        expected += 1
        state = evolve(state, event)
        yield envelope, event, state


def _entry(codec: Codec, envelope: EventEnvelope, event: Any, state: Any) -> HistoryEntry[Any]:
    return HistoryEntry(
        sequence=envelope.sequence,
        timestamp_ms=envelope.timestamp_ms,
        command_id=envelope.command_id,
        type=envelope.type,
        event=event,
        view=codec.aggregate.view(state, envelope.sequence),
        principal=envelope.principal,
    )


def check_page(after_version: int, limit: int) -> None:
    """Raise ValueError unless ``after_version`` >= 0 and 1 <= ``limit`` <= ``MAX_PAGE``."""
    if after_version < 0 or not 0 < limit <= MAX_PAGE:
        raise ValueError(f"need after_version >= 0 and 1 <= limit <= {MAX_PAGE}")


def history_page(
    codec: Codec,
    aggregate_id: str,
    records: Iterable[bytes],
    after_version: int,
    limit: int,
    *,
    start: Waypoint = ORIGIN,
    deadline: QueryDeadline | None = None,
) -> HistoryPage[Any]:
    """The entries after ``after_version``, at most ``limit`` (1 to ``MAX_PAGE``), folding
    ``records`` (the events after ``start``, which is at or before ``after_version``). Reads
    at most one record past the page."""
    check_page(after_version, limit)
    if start.sequence > after_version:
        raise ValueError(f"a page after {after_version} cannot start at {start.sequence}")
    entries: list[HistoryEntry[Any]] = []
    for envelope, event, state in _states(codec, records, start, deadline):
        if envelope.sequence <= after_version:
            continue
        if len(entries) == limit:
            return HistoryPage(
                aggregate_id=aggregate_id, entries=entries, next_after=entries[-1].sequence
            )
        entries.append(_entry(codec, envelope, event, state))
    return HistoryPage(aggregate_id=aggregate_id, entries=entries, next_after=None)


def state_at(
    codec: Codec,
    aggregate_id: str,
    records: Iterable[bytes],
    version: int,
    *,
    start: Waypoint = ORIGIN,
    deadline: QueryDeadline | None = None,
) -> PointInTime[Any] | None:
    """The aggregate after its event ``version``, folding ``records`` (the events after
    ``start``, which is before ``version``); None when it has no such event."""
    if version < 1:
        return None
    if start.sequence >= version:
        raise ValueError(f"a fold to event {version} cannot start at {start.sequence}")
    for envelope, event, state in _states(codec, records, start, deadline):
        if envelope.sequence == version:
            point = _entry(codec, envelope, event, state)
            return PointInTime(
                aggregate_id=aggregate_id,
                version=version,
                timestamp_ms=point.timestamp_ms,
                view=point.view,
            )
    return None


def holder(seams: Sequence[Seam], sequence: int) -> int | None:
    """The partition that holds the account's event ``sequence`` (None: this one), from this
    partition's ``seams`` in (sequence, log) order: the last seam before the event says, or,
    when there is none, an arrival after it (the account came here later)."""
    before = [seam for seam in seams if seam.sequence < sequence]
    if before:
        last = before[-1]
        return None if last.arrived else last.partition
    return seams[0].partition if seams and seams[0].arrived else None


def departure_after(seams: Sequence[Seam], sequence: int) -> Seam | None:
    """The first departure at or after event ``sequence``: where this partition's stint
    holding that event ends (None: it has not ended)."""
    return next((s for s in seams if s.sequence >= sequence and not s.arrived), None)


def stint_start(seams: Sequence[Seam], sequence: int) -> Seam | None:
    """The arrival that began this partition's stint holding event ``sequence`` (None: the
    account began here)."""
    arrivals = [s for s in seams if s.sequence < sequence and s.arrived]
    return arrivals[-1] if arrivals else None


def last_at_or_before(
    at_ms: int, last: int, timestamp_of: Callable[[int], int], after: int = 0
) -> int:
    """The last of events ``after`` + 1 to ``last`` committed at or before ``at_ms``
    (``after``: none is), by binary search: ``timestamp_of(sequence)`` is read for about
    log2(``last`` − ``after``) sequences. Event times never decrease along an aggregate's
    sequence (a partition's clock never runs backwards, and a move raises the target's to
    the source's)."""
    low, high = after, last  # event low is at or before at_ms (after: none is); high + 1 after
    while low < high:
        middle = (low + high + 1) // 2
        if timestamp_of(middle) <= at_ms:
            low = middle
        else:
            high = middle - 1
    return low


def waypoints(
    codec: Codec, records: Iterable[bytes], start: Waypoint, through: int
) -> Iterator[Waypoint]:
    """The waypoints after ``start`` up to event ``through``, folding ``records`` (the events
    after ``start``). Raises CodecError for a gap, ValueError where ``evolve`` does."""
    if through <= start.sequence:
        return
    for envelope, _, state in _states(codec, records, start, None):
        if envelope.sequence % WAYPOINT_EVERY == 0:
            yield Waypoint(envelope.sequence, state)
        if envelope.sequence >= through:
            return
