"""The spans of one batch: a CONSUMER ``process {topic}`` span per traced command, and the
transaction's ``commit {topic}`` span linked to every command it commits.

A process span continues the client's ``send {topic}`` span (its parent is the creation
context in the command's headers) and lasts from the batch's start until its transaction
has ended, so it measures the command's time in the actor, commit included. The commit
span (kind CLIENT, ``messaging.operation.type=settle``) links to each command's creation
context, so one command's trace leads to the transaction its latency was spent in. The
events a command caused carry its process span's context for downstream consumers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from actors import tracing
from actors.messaging import Operation, attributes
from topology.step.records import InRecord, Outcome, origin

__all__ = ["BatchTrace"]


class BatchTrace:
    """The spans of one batch of ``topic[partition]``; ``end`` must follow ``start``."""

    def __init__(self, topic: str, partition: int, group: str, server: dict[str, Any]) -> None:
        self.topic, self.partition, self.group, self.server = topic, partition, group, server
        self._spans: dict[int, Span] = {}
        self._links: list[Link] = []

    def start(self, records: Sequence[InRecord]) -> None:
        """A process span for every record that carries a trace context."""
        tracer = tracing.tracer()
        for record in records:
            parent = tracing.context_from_headers(record.headers)
            if parent is None:
                continue
            creation = trace.get_current_span(parent).get_span_context()
            self._links.append(Link(creation, {"messaging.kafka.offset": record.offset}))
            self._spans[origin(record.offset, record.internal)] = tracer.start_span(
                f"process {self.topic}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes(
                    Operation.PROCESS,
                    "process",
                    self.topic,
                    self.partition,
                    key=record.key,
                    offset=record.offset,
                    group=self.group,
                    server_attributes=self.server,
                ),
            )

    def decided(self, outcomes: Sequence[Outcome]) -> dict[int, list[tuple[str, bytes]]]:
        """Record each traced command's outcome; returns the trace headers for the events of
        each command (its process span's context), by `origin` of the command."""
        headers: dict[int, list[tuple[str, bytes]]] = {}
        for o in outcomes:
            span = self._spans.get(origin(o.offset, o.internal))
            if span is None:
                continue
            span.set_attributes(
                {
                    "eventledger.partition": self.partition,
                    "eventledger.offset": o.offset,
                    "eventledger.aggregate_id": o.aggregate_id or "",
                    "eventledger.command_type": o.command_type or "",
                    "eventledger.outcome": o.outcome,
                    "eventledger.code": o.code or "",
                    "eventledger.principal": o.principal or "",
                }
            )
            headers[origin(o.offset, o.internal)] = tracing.headers_from_context(
                trace.set_span_in_context(span)
            )
        return headers

    @contextmanager
    def commit(self, size: int, next_offset: int) -> Iterator[Span]:
        """The transaction's span, linked to the creation context of every traced command."""
        with tracing.tracer().start_as_current_span(
            f"commit {self.topic}",
            kind=SpanKind.CLIENT,
            links=self._links,
            attributes={
                **attributes(
                    Operation.SETTLE,
                    "commit",
                    self.topic,
                    self.partition,
                    group=self.group,
                    server_attributes=self.server,
                ),
                "messaging.batch.message_count": size,
                "eventledger.partition": self.partition,
                "eventledger.batch.size": size,
                "eventledger.offset.next": next_offset,
            },
        ) as span:
            yield span

    def end(self, error: BaseException | None = None) -> None:
        """End every process span (marked as failed when the batch did not commit)."""
        for span in self._spans.values():
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.set_attribute("error.type", type(error).__name__)
            span.end()
        self._spans.clear()
        self._links.clear()
