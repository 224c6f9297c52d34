"""Views read without bounds, coalesced per partition (``ViewBatches``): a lone read goes at
once, reads that arrive while a batch of their partition is in flight go together in the
next one, other partitions do not wait, each read gets its own answer or the batch's error,
and a read that gave up is skipped."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from actors.messages import ViewAt
from eventledger.http.view_batches import ViewBatches
from ledger.state import AccountView
from topology.envelopes import Position


class _Reads:
    """Accounts "p<partition>-<name>"; a batch blocks until ``release`` when ``hold``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.hold = False
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.error: Exception | None = None

    def partition_of(self, account: str) -> int:
        return int(account[1])

    def read_batch(self, accounts: list[str], *, timeout: float) -> list[ViewAt]:
        self.batches.append(list(accounts))
        seq = len(self.batches)
        self.entered.release()
        if self.hold:
            self.release.wait(10)
        if self.error is not None:
            raise self.error
        return [
            ViewAt(
                view=AccountView("open", "EUR", len(a), 0, 1),
                version=1,
                position=Position(self.partition_of(a), seq),
            )
            for a in accounts
        ]


async def _blocking(call: Callable[[], list[ViewAt]]) -> list[ViewAt]:
    return await asyncio.to_thread(call)


def test_reads_behind_a_batch_in_flight_go_together_and_other_partitions_do_not_wait() -> None:
    reads = _Reads()
    reads.hold = True
    batches = ViewBatches(reads, _blocking, 5.0)

    async def run() -> list[ViewAt]:
        first = asyncio.create_task(batches.read("p0-a"))
        await asyncio.to_thread(reads.entered.acquire)  # p0's first batch is in flight
        behind = [asyncio.create_task(batches.read(a)) for a in ("p0-bb", "p0-ccc", "p0-bb")]
        other = asyncio.create_task(batches.read("p1-dddd"))
        await asyncio.to_thread(reads.entered.acquire)  # p1 did not wait for p0
        assert reads.batches == [["p0-a"], ["p1-dddd"]]
        reads.release.set()
        return [await first, *[await b for b in behind], await other]

    found = asyncio.run(run())
    assert reads.batches == [["p0-a"], ["p1-dddd"], ["p0-bb", "p0-ccc", "p0-bb"]]
    balances = [f.view.balance for f in found if isinstance(f.view, AccountView)]
    assert balances == [4, 5, 6, 5, 7]  # each read its own account's answer
    assert [str(f.position) for f in found] == ["0:1", "0:3", "0:3", "0:3", "1:2"]


def test_every_read_of_a_failed_batch_gets_its_error_and_the_next_batch_goes_on() -> None:
    reads = _Reads()
    reads.error = RuntimeError("the writer is gone")
    batches = ViewBatches(reads, _blocking, 5.0)

    async def run() -> tuple[tuple[ViewAt | BaseException, ...], ViewAt]:
        failed = await asyncio.gather(
            batches.read("p0-a"), batches.read("p0-b"), return_exceptions=True
        )
        reads.error = None
        return failed, await batches.read("p0-c")

    failed, after = asyncio.run(run())
    assert [type(f) for f in failed] == [RuntimeError, RuntimeError]
    assert after.view is not None


def test_a_read_that_gave_up_is_skipped_and_the_others_are_answered() -> None:
    reads = _Reads()
    reads.hold = True
    batches = ViewBatches(reads, _blocking, 5.0)

    async def run() -> ViewAt:
        first = asyncio.create_task(batches.read("p0-a"))
        await asyncio.to_thread(reads.entered.acquire)
        impatient = asyncio.create_task(batches.read("p0-b"))
        patient = asyncio.create_task(batches.read("p0-c"))
        await asyncio.sleep(0)
        impatient.cancel()
        reads.release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return await patient

    found = asyncio.run(run())
    assert found.view is not None and reads.batches[1] == ["p0-b", "p0-c"]
