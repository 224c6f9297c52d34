"""Consumed Kafka messages as the batch step's input records."""

from __future__ import annotations

import logging
from typing import Any

from topology.step import InRecord

__all__ = ["UNREADABLE_HEADERS", "in_record"]

log = logging.getLogger(__name__)

UNREADABLE_HEADERS = ("eventledger.error.unreadable_headers", b"1")
"""Stands for a record's headers when the client library could not read them."""


def in_record(msg: Any) -> InRecord:
    """The input record of a consumed message. Headers the client library cannot read (a key
    that is not UTF-8) are replaced by `UNREADABLE_HEADERS`: the command is still handled,
    only its trace context is lost, so one hostile header never fails a batch."""
    try:
        headers = msg.headers() or ()
    except (UnicodeError, ValueError, SystemError) as e:
        log.warning("offset %d: unreadable headers (%s)", msg.offset(), e)
        headers = (UNREADABLE_HEADERS,)
    return InRecord(msg.offset(), msg.key(), msg.value(), headers)
