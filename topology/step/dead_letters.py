"""A dead letter: the record as it came (cut to the dead-letter limits, and said so), with
headers that say where it came from and why it was refused."""

from collections.abc import Sequence

from topology.limits import MAX_DLQ_HEADER_BYTES, MAX_DLQ_KEY_BYTES, MAX_DLQ_VALUE_BYTES
from topology.step.records import InRecord, OutRecord, origin
from topology.topics import TopicKind

__all__ = ["dead_letter", "error_headers"]


def error_headers(
    topic: str, partition: int, offset: int, code: str, message: str
) -> list[tuple[str, bytes]]:
    """Headers that say where a dead-lettered record came from and why it was refused."""
    return [
        ("eventledger.error.topic", topic.encode()),
        ("eventledger.error.partition", str(partition).encode()),
        ("eventledger.error.offset", str(offset).encode()),
        ("eventledger.error.code", code.encode()),
        ("eventledger.error.message", message.encode()),
    ]


def dead_letter(
    record: InRecord, *, topic: str, partition: int, code: str, message: str
) -> OutRecord:
    """The dlq record of `record`, read from `topic`[`partition`] and refused with `code` and
    `message` (already clipped to the message limit): its key, value and headers cut to the
    dead-letter limits, each cut said in a header of its own."""
    headers = _copied_headers(record.headers)
    headers += error_headers(topic, partition, record.offset, code, message)
    key, value = record.key, record.value
    if key is not None and len(key) > MAX_DLQ_KEY_BYTES:
        headers.append(("eventledger.error.key_bytes", str(len(key)).encode()))
        key = key[:MAX_DLQ_KEY_BYTES]
    if value is not None and len(value) > MAX_DLQ_VALUE_BYTES:
        headers.append(("eventledger.error.value_bytes", str(len(value)).encode()))
        value = value[:MAX_DLQ_VALUE_BYTES]
    return OutRecord(
        TopicKind.DLQ, partition, key, value, headers, origin(record.offset, record.internal)
    )


def _copied_headers(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A record's headers to copy into its dead letter, while they fit the limit, and only
    those whose name is valid UTF-8 (a client library would fail to produce another); how
    many were left out is said in a header of its own."""
    copied: list[tuple[str, bytes]] = []
    size = 0
    for name, value in headers:
        try:
            name.encode()
        except UnicodeEncodeError:
            continue
        size += len(name) + len(value or b"")
        if size > MAX_DLQ_HEADER_BYTES:
            left = len(headers) - len(copied)
            return [*copied, ("eventledger.error.headers_dropped", str(left).encode())]
        copied.append((name, value))
    return copied
