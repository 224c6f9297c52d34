"""The producer span of one command sent, and the trace context it carries in its headers.

With an SDK installed, each send is a ``send {topic}`` span (OpenTelemetry's messaging
conventions plus the ``eventledger.*`` command attributes) and the command carries that span's
``traceparent``, so the partition's ``process`` span is its child. Without one, a command
carries the caller's own trace context, if the caller has one, and no span is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from actors import messaging, tracing

__all__ = ["send_span"]


@contextmanager
def send_span(
    topic: str,
    partition: int,
    *,
    aggregate_id: str,
    command_id: str,
    command_type: str,
    principal: str | None = None,
    server: dict[str, AttributeValue],
) -> Iterator[tracing.Headers | None]:
    """Around producing one command to ``topic[partition]``: yields the headers to send it
    with (None: no trace context)."""
    if not tracing.enabled():
        yield tracing.current_headers()
        return
    with tracing.tracer().start_as_current_span(
        f"send {topic}",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            **messaging.attributes(
                messaging.Operation.SEND,
                "send",
                topic,
                partition,
                key=aggregate_id,
                server_attributes=server,
            ),
            "eventledger.command_id": command_id,
            "eventledger.aggregate_id": aggregate_id,
            "eventledger.command_type": command_type,
            "eventledger.partition": partition,
            "eventledger.principal": principal or "",
        },
    ):
        yield tracing.headers_from_context()
