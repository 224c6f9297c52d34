"""The limits on what a command may be, checked in both places: the client refuses to send
past them (a clear ValueError), and the partition dead-letters what slips through, so that no
record can make an output too large for Kafka (a reply repeats the ids; a dead letter copies
the record) and wedge its partition.

Nesting deeper than the decoder's recursion limit (about a thousand levels) is refused as
malformed; `MAX_COMMAND_BYTES` bounds everything else a record can hold. What a command does
to its aggregate's state is bounded by `MAX_SNAPSHOT_BYTES` (`topology.step.guard`).
"""

from typing import Final

__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_DLQ_HEADER_BYTES",
    "MAX_DLQ_KEY_BYTES",
    "MAX_DLQ_VALUE_BYTES",
    "MAX_ID_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_SNAPSHOT_BYTES",
    "clip",
]

MAX_ID_CHARS: Final = 256
"""Characters in a command id or an aggregate id (at most 1 KiB of UTF-8 each)."""

MAX_COMMAND_BYTES: Final = 64 * 1024
"""Bytes in a command record's value (envelope and payload)."""

MAX_DLQ_VALUE_BYTES: Final = 64 * 1024
"""A dead letter keeps at most this much of the record's value (the rest is cut, and said)."""

MAX_DLQ_KEY_BYTES: Final = 1024
"""A dead letter keeps at most this much of the record's key."""

MAX_DLQ_HEADER_BYTES: Final = 16 * 1024
"""A dead letter copies the record's headers only while they add up to at most this."""

MAX_SNAPSHOT_BYTES: Final = 768 * 1024
"""Bytes in an aggregate's snapshot record value, and in its view's: a quarter below Kafka's
default record limits (librdkafka's `message.max.bytes`, 1,000,000; the broker's, 1,048,588),
which leaves room for the key (at most 1 KiB), headers and framing. A command whose events
would pass it is refused (`FlowCode.STATE_TOO_LARGE`) and a leg set aside, so that no such
record is ever written (`topology.step.guard`)."""

MAX_MESSAGE_CHARS: Final = 1000
"""Characters in a rejection's message (it may quote what was sent)."""


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text`, cut to `limit` characters with a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}... ({len(text) - limit + 40} characters cut)"
