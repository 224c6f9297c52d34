"""One trace from the client's send span, through the actor's handle and commit spans, to
the trace context in the event record's headers (SDK in-memory exporter, in-process worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.admin import ensure_topics
from actors.audit import read_events
from actors.client import LedgerClient
from actors.partition import PartitionWorker
from ledger.aggregate import LEDGER
from ledger.commands import Deposit, OpenAccount
from topology.settings import Settings
from topology.topics import TopicLayout


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The SDK with an in-memory exporter as the process's provider (settable once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.clear()


def test_one_trace_from_client_to_event_headers(
    bootstrap: str, app_id: str, exporter: InMemorySpanExporter
) -> None:
    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=1, environ={}
    )
    ensure_topics(bootstrap, TopicLayout(app_id, 1))
    worker = PartitionWorker(settings, 0)
    try:
        with LedgerClient(settings) as client:
            assert client.execute("tess", OpenAccount("EUR")).accepted
            assert client.execute("tess", Deposit(25)).accepted
    finally:
        worker.stop()
    spans = exporter.get_finished_spans()
    sends = [s for s in spans if s.name == "send"]
    handles = [s for s in spans if s.name == "handle"]
    assert len(sends) == 2 and len(handles) == 2
    assert any(s.name == "commit" for s in spans)
    for send, handle in zip(sends, handles, strict=True):
        assert handle.context.trace_id == send.context.trace_id
        assert handle.parent is not None and handle.parent.span_id == send.context.span_id
        assert handle.attributes["eventledger.outcome"] == "accepted"
        assert handle.attributes["eventledger.aggregate_id"] == "tess"
    events = list(read_events(settings, LEDGER))
    assert len(events) == 2
    for event, send in zip(events, sends, strict=True):
        traceparent = dict(event.headers)["traceparent"].decode()
        assert traceparent.split("-")[1] == f"{send.context.trace_id:032x}"
