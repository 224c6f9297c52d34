"""Retries of one command until its reply: the same request (command id and first-attempt
time) sent again and again, the pause between attempts doubling, until the reply comes or
the deadline passes.

Sending again is safe because the service executes a command id at most once within its
idempotency window, counted from the first attempt; a retry past the window is refused as
``expired``, never executed again. The seam is public: what is retried (a ``Request``), the
pauses (``Backoff``), the deadline (``timeout``), and the channel it goes through (anything
with ``expect``, ``produce`` and ``forget``, as ``actors.channel.ReplyChannel`` has).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from actors.channel import OutcomeUnknownError, Request
from topology.envelopes import Reply

__all__ = ["Backoff", "Channel", "ReplyTimeoutError", "Retries"]


class ReplyTimeoutError(OutcomeUnknownError):
    """No reply before the caller's timeout, after every retry."""


class Channel(Protocol):
    """Where a request is sent and its reply awaited (``actors.channel.ReplyChannel``)."""

    def expect(self, request: Request) -> Future[Reply]:
        """A future of ``request``'s reply, from now on."""
        ...

    def produce(self, request: Request) -> None:
        """Send ``request`` once; a failure to deliver it is the caller's to retry."""
        ...

    def forget(self, request: Request, future: Future[Reply]) -> None:
        """No longer route ``request``'s reply to ``future``."""
        ...


@dataclass(frozen=True)
class Backoff:
    """The pauses between attempts: ``first`` seconds, then doubling up to ``cap``."""

    first: float = 1.0
    cap: float = 8.0

    def __post_init__(self) -> None:
        if self.first <= 0:
            raise ValueError(f"retry_interval must be > 0, got {self.first}")

    def pauses(self) -> Iterator[float]:
        """The pause after each attempt, without end."""
        pause = self.first
        while True:
            yield pause
            pause = min(pause * 2, self.cap)


class Retries:
    """Sends requests through ``channel`` until their replies come. ``clock`` (monotonic
    seconds) places the deadlines; the waits themselves are the channel's futures'."""

    def __init__(
        self,
        channel: Channel,
        backoff: Backoff,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.backoff = backoff
        self.clock = clock

    def waits(self, timeout: float) -> Iterator[float]:
        """The seconds to wait for the reply after each attempt: the backoff's pauses, cut
        at the deadline ``timeout`` seconds from now, ending once it has passed. There is
        always a first attempt."""
        deadline = self.clock() + timeout
        for pause in self.backoff.pauses():
            yield max(0.0, min(pause, deadline - self.clock()))
            if self.clock() >= deadline:
                return

    def execute(self, request: Request, timeout: float) -> Reply:
        """Send ``request`` until its reply comes; ``ReplyTimeoutError`` after ``timeout``
        seconds without one."""
        future = self.channel.expect(request)
        try:
            for wait in self.waits(timeout):
                self.channel.produce(request)
                try:
                    return future.result(wait)
                except TimeoutError:
                    continue
            raise _timed_out(request, timeout)
        finally:
            self.channel.forget(request, future)

    async def execute_async(self, request: Request, timeout: float) -> Reply:
        """The asyncio form of ``execute``."""
        future = self.channel.expect(request)
        waiting = asyncio.wrap_future(future)
        try:
            for wait in self.waits(timeout):
                self.channel.produce(request)
                done, _ = await asyncio.wait({waiting}, timeout=wait)
                if done:
                    return waiting.result()
            raise _timed_out(request, timeout)
        finally:
            self.channel.forget(request, future)


def _timed_out(request: Request, timeout: float) -> ReplyTimeoutError:
    """The error of ``request`` unanswered after ``timeout`` seconds of retries."""
    return ReplyTimeoutError(
        f"no reply for command {request.command_id} in {timeout:.1f}s: outcome unknown; "
        f"retry with the same command id and first_attempt_ms={request.first_attempt_ms}",
        command_id=request.command_id,
        first_attempt_ms=request.first_attempt_ms,
    )
