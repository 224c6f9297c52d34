"""Reads of account views without bounds, coalesced per partition into one call
(``Reads.read_batch``): what a GET of an account costs a replica and the member that answers
is mostly the Ray call, not the view, so many GETs share one.

Invariants:
- at most one batch per partition is in flight; the reads that arrive meanwhile wait for it
  to end and go together in the next one (at most ``MAX_BATCH``), so a lone read goes at
  once and a busy partition gets fewer, larger calls;
- every read gets its own aggregate's answer, or the batch's error (each waiter sees the
  error its own read would have met); a waiter that gave up (its deadline) is skipped;
- a batch's reads are answered at one position: each is a read "as of" that position, as a
  read without bounds always is. Reads with bounds never come here.
One per event loop (not thread-safe); the batch call runs on the replica's blocking executor.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar

from actors.messages import ViewAt

__all__ = ["MAX_BATCH", "BatchReads", "ViewBatches"]

MAX_BATCH: Final = 256
T = TypeVar("T")


class BatchReads(Protocol):
    """What the batches read through (``actors.reads.Reads``)."""

    def partition_of(self, aggregate_id: str) -> int: ...

    def read_batch(self, aggregate_ids: list[str], *, timeout: float) -> list[ViewAt]: ...


class ViewBatches:
    """Views of ``reads``, asked through ``blocking`` (the replica's executor) with
    ``timeout`` per batch."""

    def __init__(
        self,
        reads: BatchReads,
        blocking: Callable[[Callable[[], list[ViewAt]]], Awaitable[list[ViewAt]]],
        timeout: float,
    ) -> None:
        self._reads, self._blocking, self._timeout = reads, blocking, timeout
        self._queued: dict[int, list[tuple[str, asyncio.Future[ViewAt]]]] = {}
        self._draining: dict[int, asyncio.Task[None]] = {}

    async def read(self, aggregate_id: str) -> ViewAt:
        """The aggregate's view as of the position its batch was read at."""
        partition = self._reads.partition_of(aggregate_id)
        future: asyncio.Future[ViewAt] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(partition, []).append((aggregate_id, future))
        if partition not in self._draining:
            self._draining[partition] = asyncio.create_task(self._drain(partition))
        return await future

    async def _drain(self, partition: int) -> None:
        batch: list[tuple[str, asyncio.Future[ViewAt]]] = []
        try:
            while queued := self._queued.get(partition):
                batch, self._queued[partition] = queued[:MAX_BATCH], queued[MAX_BATCH:]
                ids = [aggregate_id for aggregate_id, _ in batch]
                try:
                    found = await self._blocking(
                        functools.partial(self._reads.read_batch, ids, timeout=self._timeout)
                    )
                except Exception as e:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), answer in zip(batch, found, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:  # ended, or cancelled: nobody is left waiting for an answer that never comes
            del self._draining[partition]
            for _, future in batch + self._queued.pop(partition, []):
                if not future.done():
                    future.cancel()
