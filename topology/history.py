"""An aggregate's history and its state at a point in time, folded from its own events.

Pure: given an aggregate's event records in sequence order (the history index's values, see
``actors.history``), fold them with the aggregate's current ``evolve`` and
upcasters. The work is the aggregate's own events up to the page or the point asked for, never its
partition's. The views are the aggregate's public view after each event, so a newer
``evolve`` (after a rebuild) is what every answer reflects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

import msgspec

from topology.codec.aggregate import Codec
from topology.codec.wire import CodecError

__all__ = [
    "MAX_PAGE",
    "HistoryEntry",
    "HistoryPage",
    "PointInTime",
    "history_page",
    "state_at",
]

MAX_PAGE = 1_000
"""The most entries one page holds."""

V = TypeVar("V")
"""The aggregate's public view type."""


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
    ``after_version`` of the next page (None: this is the last one)."""

    aggregate_id: str
    entries: list[HistoryEntry[V]]
    next_after: int | None


class PointInTime(msgspec.Struct, Generic[V], frozen=True, kw_only=True):
    """The aggregate as it was after its event ``version`` (committed at ``timestamp_ms``)."""

    aggregate_id: str
    version: int
    timestamp_ms: int
    view: V


def _fold(codec: Codec, records: Iterable[bytes]) -> Iterator[HistoryEntry[Any]]:
    """Each event with the view after it. Raises CodecError when the sequences are not
    1, 2, 3, ... (an index that lost or repeats an event must not answer)."""
    aggregate = codec.aggregate
    state: Any = None
    expected = 1
    for data in records:
        envelope, event = codec.events.decode(data)
        if envelope.sequence != expected:
            raise CodecError(
                f"history of {envelope.aggregate_id!r}: sequence {envelope.sequence} where "
                f"{expected} was expected"
            )
        expected += 1
        state = aggregate.evolve(state, event)
        yield HistoryEntry(
            sequence=envelope.sequence,
            timestamp_ms=envelope.timestamp_ms,
            command_id=envelope.command_id,
            type=envelope.type,
            event=event,
            view=aggregate.view(state, envelope.sequence),
            principal=envelope.principal,
        )


def history_page(
    codec: Codec, aggregate_id: str, records: Iterable[bytes], after_version: int, limit: int
) -> HistoryPage[Any]:
    """The entries after ``after_version``, at most ``limit`` (1 to ``MAX_PAGE``)."""
    if after_version < 0 or not 0 < limit <= MAX_PAGE:
        raise ValueError(f"need after_version >= 0 and 1 <= limit <= {MAX_PAGE}")
    entries: list[HistoryEntry[Any]] = []
    for entry in _fold(codec, records):
        if entry.sequence <= after_version:
            continue
        if len(entries) == limit:
            return HistoryPage(
                aggregate_id=aggregate_id, entries=entries, next_after=entries[-1].sequence
            )
        entries.append(entry)
    return HistoryPage(aggregate_id=aggregate_id, entries=entries, next_after=None)


def state_at(
    codec: Codec,
    aggregate_id: str,
    records: Iterable[bytes],
    *,
    at_ms: int | None = None,
    version: int | None = None,
) -> PointInTime[Any] | None:
    """The aggregate after its last event at or before ``at_ms`` (epoch ms), or after event
    ``version``; None when it did not exist yet (or has no such version). Exactly one of the
    two is given. Event times never decrease along an aggregate's sequence (the partition's
    clock never runs backwards), so the fold stops at the first later event."""
    if (at_ms is None) == (version is None):
        raise ValueError("give exactly one of at_ms and version")
    found: HistoryEntry[Any] | None = None
    for entry in _fold(codec, records):
        if (at_ms is not None and entry.timestamp_ms > at_ms) or (
            version is not None and entry.sequence > version
        ):
            break
        found = entry
    if found is None or (version is not None and found.sequence != version):
        return None
    return PointInTime(
        aggregate_id=aggregate_id,
        version=found.sequence,
        timestamp_ms=found.timestamp_ms,
        view=found.view,
    )
