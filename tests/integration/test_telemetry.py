"""Telemetry with the SDK's in-memory exporter and reader, and an in-process worker: one
trace from the client's ``send`` span, through the actor's ``process`` span and the
``commit`` span linked to it, to the trace context in the event record's headers, by the
OpenTelemetry messaging conventions; and the partition's metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from actors import tracing
from actors.admin import ensure_topics
from actors.audit import read_events
from actors.client import LedgerClient
from actors.messaging import SCHEMA_URL
from actors.partition import PartitionWorker
from ledger.aggregate import LEDGER
from ledger.commands import Deposit, OpenAccount
from topology.names import Names
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
    tracing.refresh()  # the client looks again at most once a second by itself
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
    _assert_one_trace_by_the_conventions(exporter, settings)

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
    units = {
        m.name: m.unit
        for rm in reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert units["eventledger.commit.duration"] == "s"
    assert units["eventledger.restore.duration"] == "s"


def _assert_one_trace_by_the_conventions(
    exporter: InMemorySpanExporter, settings: Settings
) -> None:
    app_id, bootstrap = settings.app_id, settings.bootstrap_servers
    spans = exporter.get_finished_spans()
    commands = f"{app_id}.commands"
    sends = [s for s in spans if s.name == f"send {commands}"]
    processes = [s for s in spans if s.name == f"process {commands}"]
    commits = [s for s in spans if s.name == f"commit {commands}"]
    assert len(sends) == 3 and len(processes) == 3 and commits
    assert {s.kind for s in sends} == {SpanKind.PRODUCER}
    assert {s.kind for s in processes} == {SpanKind.CONSUMER}
    assert {s.kind for s in commits} == {SpanKind.CLIENT}
    kafka = {
        "messaging.system": "kafka",
        "messaging.destination.name": commands,
        "messaging.destination.partition.id": "0",
        "messaging.kafka.message.key": "tess",
        "server.address": "127.0.0.1",
        "server.port": int(bootstrap.rsplit(":", 1)[1]),
    }
    group = Names.of(settings).commands_group
    for send, process in zip(sends, processes, strict=True):
        assert {**send.attributes, **kafka} == send.attributes  # type: ignore[dict-item]
        assert send.attributes["messaging.operation.type"] == "send"  # type: ignore[index]
        assert send.attributes["eventledger.aggregate_id"] == "tess"  # type: ignore[index]
        assert {**process.attributes, **kafka} == process.attributes  # type: ignore[dict-item]
        assert process.attributes["messaging.operation.type"] == "process"  # type: ignore[index]
        assert process.attributes["messaging.consumer.group.name"] == group  # type: ignore[index]
        assert isinstance(process.attributes["messaging.kafka.offset"], int)  # type: ignore[index]
        assert process.attributes["eventledger.aggregate_id"] == "tess"  # type: ignore[index]
        assert process.context.trace_id == send.context.trace_id
        assert process.parent is not None and process.parent.span_id == send.context.span_id
        # the process span lasts until its transaction has ended: it holds a commit span
        commit = next(
            c for c in commits if any(k.context.span_id == send.context.span_id for k in c.links)
        )
        assert process.start_time <= commit.start_time  # type: ignore[operator]
        assert commit.end_time <= process.end_time  # type: ignore[operator]
        assert commit.attributes["messaging.operation.type"] == "settle"  # type: ignore[index]
        assert commit.attributes["messaging.system"] == "kafka"  # type: ignore[index]
    assert [p.attributes["eventledger.outcome"] for p in processes] == [  # type: ignore[index]
        "accepted", "accepted", "rejected",
    ]  # fmt: skip
    assert all(s.instrumentation_scope.schema_url == SCHEMA_URL for s in spans)  # type: ignore[union-attr]
    events = list(read_events(settings, LEDGER))
    assert len(events) == 2
    for event, send, process in zip(events, sends[:2], processes[:2], strict=True):
        _, trace_id, parent_id, _ = dict(event.headers)["traceparent"].decode().split("-")
        assert (trace_id, parent_id) == (
            f"{send.context.trace_id:032x}",
            f"{process.context.span_id:016x}",
        )
