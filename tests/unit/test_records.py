"""Consumed messages as input records: unreadable headers never fail a batch."""

from typing import Any

from eventledger.actors.records import UNREADABLE_HEADERS, in_record


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
