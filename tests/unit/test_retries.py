"""Retries of one command (``actors.retries``) over a channel in memory: the same request on
every attempt, the pauses doubling up to their cap and cut at the deadline, the waiter
forgotten whatever the outcome, and the timeout saying how to retry from elsewhere."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

import pytest

from actors.channel import Request
from actors.retries import Backoff, ReplyTimeoutError, Retries
from topology.envelopes import Reply

REQUEST = Request("alice", object(), "cmd-1", first_attempt_ms=1_000)


class _Channel:
    """Answers the ``answer_on``-th attempt (never, when None); sending ``refuse`` raises."""

    def __init__(self, answer_on: int | None, refuse: bool = False) -> None:
        self.answer_on = answer_on
        self.refuse = refuse
        self.sent: list[Request] = []
        self.waiting: dict[tuple[str, str], Future[Reply]] = {}

    def expect(self, request: Request) -> Future[Reply]:
        future: Future[Reply] = Future()
        self.waiting[(request.command_id, request.aggregate_id)] = future
        return future

    def produce(self, request: Request) -> None:
        if self.refuse:
            raise ValueError("command_id must be 1 to 128 characters")
        self.sent.append(request)
        if len(self.sent) == self.answer_on:
            reply = Reply(
                command_id=request.command_id,
                aggregate_id=request.aggregate_id,
                accepted=True,
                code=None,
                message="",
                version=len(self.sent),
            )
            self.waiting[(request.command_id, request.aggregate_id)].set_result(reply)

    def forget(self, request: Request, future: Future[Reply]) -> None:
        assert self.waiting.pop((request.command_id, request.aggregate_id)) is future


class _Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pauses_double_from_the_first_up_to_the_cap() -> None:
    pauses = Backoff(0.5, cap=3.0).pauses()
    assert [next(pauses) for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_a_first_pause_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_interval must be > 0"):
        Backoff(0.0)


def test_the_waits_are_the_pauses_cut_at_the_deadline() -> None:
    clock = _Clock()
    retries = Retries(_Channel(None), Backoff(1.0), clock=clock)
    waits = []
    for wait in retries.waits(5.0):
        waits.append(wait)
        clock.now += wait  # each wait runs out: no reply came
    assert waits == [1.0, 2.0, 2.0]


def test_there_is_always_a_first_attempt() -> None:
    assert list(Retries(_Channel(None), Backoff(1.0), clock=_Clock()).waits(0.0)) == [0.0]


def test_the_same_request_is_sent_until_its_reply_comes() -> None:
    channel = _Channel(answer_on=3)
    reply = Retries(channel, Backoff(0.01)).execute(REQUEST, timeout=30.0)
    assert (reply.command_id, reply.version) == ("cmd-1", 3)
    assert channel.sent == [REQUEST] * 3  # same command id and first-attempt time each time
    assert channel.waiting == {}


def test_no_reply_before_the_deadline_is_an_unknown_outcome_to_retry_elsewhere() -> None:
    channel = _Channel(answer_on=None)
    with pytest.raises(ReplyTimeoutError) as raised:
        Retries(channel, Backoff(0.01, cap=0.02)).execute(REQUEST, timeout=0.1)
    assert (raised.value.command_id, raised.value.first_attempt_ms) == ("cmd-1", 1_000)
    assert "first_attempt_ms=1000" in str(raised.value)
    assert len(channel.sent) >= 3 and set(channel.sent) == {REQUEST}
    assert channel.waiting == {}


def test_a_request_the_channel_refuses_is_not_retried_and_not_left_waiting() -> None:
    channel = _Channel(answer_on=1, refuse=True)
    with pytest.raises(ValueError):
        Retries(channel, Backoff(0.01)).execute(REQUEST, timeout=1.0)
    assert channel.waiting == {}


def test_the_asyncio_form_retries_the_same_way() -> None:
    channel = _Channel(answer_on=2)
    retries = Retries(channel, Backoff(0.01))
    reply = asyncio.run(retries.execute_async(REQUEST, timeout=30.0))
    assert reply.version == 2 and channel.sent == [REQUEST] * 2
    assert channel.waiting == {}
    silent = _Channel(answer_on=None)
    with pytest.raises(ReplyTimeoutError):
        asyncio.run(Retries(silent, Backoff(0.01)).execute_async(REQUEST, timeout=0.05))
    assert silent.sent and silent.waiting == {}
