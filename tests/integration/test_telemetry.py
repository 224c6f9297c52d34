"""Telemetry with the SDK's in-memory exporter and reader, and an in-process worker: one
trace from the client's send span, through the actor's handle and commit spans, to the trace
context in the event record's headers; and the partition's metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
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
def reader() -> InMemoryMetricReader:
    """The SDK with an in-memory reader as the process's meter provider (settable once)."""
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The SDK with an in-memory exporter as the process's provider (settable once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.clear()


def test_one_trace_from_client_to_event_headers_and_metrics(
    bootstrap: str,
    app_id: str,
    state_dir: str,
    exporter: InMemorySpanExporter,
    reader: InMemoryMetricReader,
) -> None:
    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=1, state_dir=state_dir, environ={}
    )
    ensure_topics(bootstrap, TopicLayout(app_id, 1))
    worker = PartitionWorker(settings, 0, LEDGER)
    try:
        with LedgerClient(settings) as client:
            assert client.execute("tess", OpenAccount("EUR")).accepted
            assert client.execute("tess", Deposit(25)).accepted
            assert client.execute("tess", Deposit(0)).code == "amount_not_positive"
    finally:
        worker.stop()
    spans = exporter.get_finished_spans()
    sends = [s for s in spans if s.name == "send"]
    handles = [s for s in spans if s.name == "handle"]
    assert len(sends) == 3 and len(handles) == 3
    assert any(s.name == "commit" for s in spans)
    for send, handle in zip(sends, handles, strict=True):
        assert handle.context.trace_id == send.context.trace_id
        assert handle.parent is not None and handle.parent.span_id == send.context.span_id
        assert handle.attributes["eventledger.aggregate_id"] == "tess"
    assert [h.attributes["eventledger.outcome"] for h in handles] == [
        "accepted", "accepted", "rejected",
    ]  # fmt: skip
    events = list(read_events(settings, LEDGER))
    assert len(events) == 2
    for event, send in zip(events, sends[:2], strict=True):
        traceparent = dict(event.headers)["traceparent"].decode()
        assert traceparent.split("-")[1] == f"{send.context.trace_id:032x}"

    points = {
        (m.name, tuple(sorted(dict(p.attributes or {}).items()))): p
        for rm in reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    }
    mine = (("eventledger.app_id", app_id), ("eventledger.partition", 0))

    def outcome(kind: str) -> tuple[tuple[str, object], ...]:
        return tuple(sorted((*mine, ("eventledger.outcome", kind))))

    accepted = points["eventledger.commands", outcome("accepted")]
    rejected = points["eventledger.commands", outcome("rejected")]
    assert (accepted.value, rejected.value) == (2, 1)  # type: ignore[union-attr]
    assert points["eventledger.batch.size", mine].sum == 3  # type: ignore[union-attr]
    assert points["eventledger.commit.duration", mine].count == 3  # type: ignore[union-attr]
