"""Span names and attributes by OpenTelemetry's semantic conventions for messaging (Kafka).

Pinned to the conventions of ``SCHEMA_URL`` (the tracer and meter carry it): span names
``{operation} {topic}``, ``messaging.system=kafka``, the destination and its partition id
(a string), the record's offset and key, the operation type, the consumer group, and
``server.address``/``server.port`` of the first bootstrap server. The ``eventledger.*``
domain attributes are set beside them by the callers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from opentelemetry.util.types import AttributeValue

__all__ = ["SCHEMA_URL", "Operation", "attributes", "server"]

SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"


class Operation(StrEnum):
    """``messaging.operation.type`` values eventledger uses."""

    SEND = "send"
    PROCESS = "process"
    SETTLE = "settle"


def server(bootstrap_servers: str) -> dict[str, AttributeValue]:
    """``server.address`` and ``server.port`` of the first bootstrap server."""
    first = bootstrap_servers.split(",", maxsplit=1)[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        return {"server.address": first}
    return {"server.address": host.strip("[]"), "server.port": int(port)}


def attributes(
    operation: Operation,
    operation_name: str,
    topic: str,
    partition: int,
    *,
    key: bytes | str | None = None,
    offset: int | None = None,
    group: str | None = None,
    server_attributes: dict[str, AttributeValue] | None = None,
) -> dict[str, AttributeValue]:
    """The messaging attributes of one operation on ``topic[partition]``."""
    found: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": str(operation),
        "messaging.operation.name": operation_name,
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        **(server_attributes or {}),
    }
    if key is not None:
        found["messaging.kafka.message.key"] = (
            key if isinstance(key, str) else key.decode("utf-8", "replace")
        )
    if offset is not None:
        found["messaging.kafka.offset"] = offset
    if group is not None:
        found["messaging.consumer.group.name"] = group
    return found
