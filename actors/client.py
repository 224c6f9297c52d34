"""``LedgerClient``: send a command and await its reply, once (``send``) or until it comes
(``execute``, sync or asyncio).

Commands go through one ``actors.channel.ReplyChannel`` on one reply lane. A command id is
executed at most once within the service's idempotency window (24 h by default) counted
from its first attempt; ``execute`` re-sends the same id with the same first-attempt time
(``actors.retries``) until the reply comes, and a retry past the window is refused as
``expired``, never executed again. The client keeps the order of its own commands to an
account across a change of the account's owner (the channel's order barrier,
``actors.barrier``). The client needs Kafka only: queries of the committed state go to the
actors over Ray (``actors.reads``).

Ids follow the one rule of ``topology.ids``: an aggregate id or command id outside it is an
``InvalidIdError`` (a ValueError) before anything is sent. Every command records who sent it:
the call's ``principal``, else the client's.
"""

from __future__ import annotations

import random
from concurrent.futures import Future
from typing import Any, Self

from actors.channel import ReplyChannel, Request, now_ms
from actors.retries import Backoff, Retries
from actors.routes import Routes
from topology.envelopes import Reply
from topology.ids import check_command_id, check_id, check_principal
from topology.settings import Settings

__all__ = ["LedgerClient"]


class LedgerClient:
    """A thread-safe client of one application. Close it (or use ``with``) when done.
    ``reply_lane`` is the lane its replies come on (random by default); ``timeout`` the
    default seconds ``execute`` waits for a reply (re-sending meanwhile), and the longest
    the order barrier holds a command (``actors.barrier``); ``retry_interval`` the first
    pause before a re-send (it doubles, up to 8 s); ``principal`` the name its commands are
    recorded under unless a call names another (None: not said)."""

    def __init__(
        self,
        settings: Settings,
        *,
        reply_lane: int | None = None,
        timeout: float = 30.0,
        retry_interval: float = 1.0,
        principal: str | None = None,
    ) -> None:
        backoff = Backoff(retry_interval)
        self.settings = settings
        self.timeout = timeout
        self.principal = None if principal is None else check_principal(principal)
        self.reply_lane = (
            reply_lane if reply_lane is not None else random.randrange(settings.reply_lanes)
        )
        self._channel = ReplyChannel(settings, lane=self.reply_lane, order_timeout=timeout)
        self._retries = Retries(self._channel, backoff)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush what was sent, stop the reply consumer; pending waiters get an error."""
        self._channel.close()

    def new_command_id(self) -> str:
        """A new command id: 128 random bits (see ``ReplyChannel.new_command_id``)."""
        return self._channel.new_command_id()

    @property
    def routes(self) -> Routes:
        """The application's routing as this client knows it, kept current from the control
        topic (``actors.routes``)."""
        return self._channel.routes

    @property
    def held(self) -> int:
        """Commands the order barrier held so far: sent after the account's owner changed
        while an earlier command of this client to the old owner was unanswered."""
        return self._channel.held

    @property
    def held_seconds(self) -> float:
        """The seconds the commands released by the order barrier spent held, summed (over
        ``held``: the mean wait of a held command)."""
        return self._channel.held_seconds

    def partition_of(self, aggregate_id: str) -> int:
        """The partition that owns ``aggregate_id`` (its commands go there)."""
        return self._channel.router.partition_of(aggregate_id.encode())

    def send(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        first_attempt_ms: int | None = None,
        principal: str | None = None,
    ) -> Future[Reply]:
        """Produce a command once and return a future of its reply. The future fails with
        ``OutcomeUnknownError`` when the broker did not acknowledge the command (it may still
        have stored it); ``execute`` re-sends instead."""
        request = self._request(
            aggregate_id,
            command,
            command_id,
            expected_version,
            first_attempt_ms=first_attempt_ms,
            principal=principal,
        )
        return self._channel.submit(request)

    def execute(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        first_attempt_ms: int | None = None,
        timeout: float | None = None,
        principal: str | None = None,
    ) -> Reply:
        """Send, re-sending the same command id with the same first-attempt time (backing
        off) until its reply comes; ``ReplyTimeoutError`` after ``timeout`` seconds. To retry
        from elsewhere after that, pass the error's ``command_id`` and ``first_attempt_ms``."""
        request = self._request(
            aggregate_id,
            command,
            command_id,
            expected_version,
            first_attempt_ms=first_attempt_ms,
            principal=principal,
        )
        return self._retries.execute(request, timeout or self.timeout)

    async def execute_async(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        first_attempt_ms: int | None = None,
        timeout: float | None = None,
        principal: str | None = None,
    ) -> Reply:
        """The asyncio form of ``execute``."""
        request = self._request(
            aggregate_id,
            command,
            command_id,
            expected_version,
            first_attempt_ms=first_attempt_ms,
            principal=principal,
        )
        return await self._retries.execute_async(request, timeout or self.timeout)

    def _request(
        self,
        aggregate_id: str,
        command: Any,
        command_id: str | None,
        expected_version: int | None,
        *,
        first_attempt_ms: int | None,
        principal: str | None,
    ) -> Request:
        """The request of ``command``: a new command id and now as its first attempt, unless
        given (a retry from elsewhere passes both). Raises InvalidIdError for an id or a
        principal outside ``topology.ids``'s rules."""
        check_id(aggregate_id, "an aggregate id")
        if command_id is not None:
            check_command_id(command_id)
        if principal is not None:
            check_principal(principal)
        return Request(
            aggregate_id,
            command,
            command_id or self._channel.new_command_id(),
            now_ms() if first_attempt_ms is None else first_attempt_ms,
            expected_version,
            principal or self.principal,
        )
