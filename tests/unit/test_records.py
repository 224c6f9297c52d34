"""Consumed messages as input records: unreadable headers never fail a batch."""

from typing import Any

from actors.records import UNREADABLE_HEADERS, in_record, poll_batch, poll_fetched
from topology.moves import HandoffPart, RecordKind, encode_part, kind_header
from topology.routing import RoutingTable


class _Message:
    def __init__(self, headers: Any) -> None:
        self._headers = headers

    def offset(self) -> int:
        return 5

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def headers(self) -> Any:
        if isinstance(self._headers, Exception):
            raise self._headers
        return self._headers


def test_readable_headers_pass_through() -> None:
    record = in_record(_Message([("traceparent", b"t")]))
    assert (record.offset, record.key, record.value) == (5, b"k", b"v")
    assert list(record.headers) == [("traceparent", b"t")]
    assert in_record(_Message(None)).headers == ()


def test_unreadable_headers_are_replaced_not_raised() -> None:
    error = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    assert list(in_record(_Message(error)).headers) == [UNREADABLE_HEADERS]


class _Consumer:
    """Hands out queued messages: ``poll`` one, ``consume`` up to ``n`` without waiting."""

    def __init__(self, queued: list[str]) -> None:
        self.queued = queued
        self.calls: list[tuple[str, float, int]] = []

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", timeout, 1))
        return self.queued.pop(0) if self.queued else None

    def consume(self, n: int, timeout: float) -> list[str]:
        self.calls.append(("consume", timeout, n))
        taken, self.queued = self.queued[:n], self.queued[n:]
        return taken


def test_poll_fetched_waits_for_one_then_takes_the_fetched_rest_up_to_the_limit() -> None:
    consumer = _Consumer(["a", "b", "c", "d"])
    assert poll_fetched(consumer, 0.05, limit=3) == ["a", "b", "c"]
    assert consumer.calls == [("poll", 0.05, 1), ("consume", 0, 2)]
    assert poll_fetched(consumer, 0.05) == ["d"]
    assert poll_fetched(consumer, 0.05) == []
    assert consumer.calls[-1] == ("poll", 0.05, 1)  # nothing came: no consume call


class _Fetched:
    """A consumed message of the internal topic: a handoff part, or an ordinary record."""

    def __init__(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._value, self._headers = value, headers

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def _part(index: int, count: int) -> _Fetched:
    table = RoutingTable.initial(2, 4) if index == 0 else None
    part = HandoffPart("m", 1, (0,), 0, index, count, table=table)
    return _Fetched(encode_part(part), [kind_header(RecordKind.HANDOFF)])


class _Stream:
    """Hands out messages one `consume` call at a time (as fetches arrive)."""

    def __init__(self, first: Any, fetches: list[list[Any]]) -> None:
        self.first, self.fetches = first, fetches

    def poll(self, timeout: float) -> Any:
        return self.first

    def consume(self, n: int, timeout: float) -> list[Any]:
        return self.fetches.pop(0) if self.fetches else []


def test_a_batch_never_ends_inside_a_moves_parts_whatever_its_limit() -> None:
    other = _Fetched(b"x", [])
    parts = [_part(i, 3) for i in range(3)]
    stream = _Stream(other, [[parts[0]], [], [parts[1]], [parts[2], other]])
    batch = poll_batch(stream, limit=2, max_seconds=5.0)
    assert batch == [other, parts[0], parts[1], parts[2], other]
    assert poll_batch(_Stream(other, [[other]]), limit=2, max_seconds=5.0) == [other, other]
