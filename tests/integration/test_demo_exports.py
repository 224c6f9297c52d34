"""``eventledger demo`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set exports the client's and the
actors' spans and metrics to an OTLP/HTTP receiver, flushed before the actors stop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: set[tuple[str, str]] = set()  # (service.name, span name)
        self.metrics: set[tuple[str, str]] = set()  # (service.name, metric name)
        self.lags: list[tuple[str, int]] = []  # (partition id, lag) of every lag data point
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        found: set[tuple[str, str]] = set()
        if self.path == "/v1/traces":
            traces = ExportTraceServiceRequest.FromString(body)
            for rs in traces.resource_spans:
                service = _service(rs.resource.attributes)
                found |= {(service, s.name) for ss in rs.scope_spans for s in ss.spans}
            target = self.server.spans
        else:
            exported = ExportMetricsServiceRequest.FromString(body)
            for rm in exported.resource_metrics:
                service = _service(rm.resource.attributes)
                found |= {(service, m.name) for sm in rm.scope_metrics for m in sm.metrics}
                lags = [
                    (_attribute(p.attributes, "messaging.destination.partition.id"), p.as_int)
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                    if m.name == "eventledger.lag"
                    for p in m.gauge.data_points
                ]
                with self.server.lock:
                    self.server.lags += lags
            target = self.server.metrics
        with self.server.lock:
            target |= found
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def _service(attributes: object) -> str:
    return _attribute(attributes, "service.name")


def _attribute(attributes: object, key: str) -> str:
    for kv in attributes:  # type: ignore[attr-defined]
        if kv.key == key:
            return str(kv.value.string_value)
    return ""


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_the_demo_exports_the_clients_and_the_actors_telemetry(
    bootstrap: str, receiver: _Receiver
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
    }
    env.pop("RAY_ADDRESS", None)
    env.pop("OTEL_SDK_DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-m", "eventledger", "demo", "--accounts", "20", "--commands", "100",
         "--partitions", "1"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(s == "eventledger-demo" and n.startswith("send ") for s, n in receiver.spans)
    assert any(s == "eventledger" and n.startswith("process ") for s, n in receiver.spans)
    assert any(s == "eventledger" and n.startswith("commit ") for s, n in receiver.spans)
    for metric in ("eventledger.commands", "eventledger.commit.duration", "eventledger.lag"):
        assert ("eventledger", metric) in receiver.metrics
    # exported as the coordinator stopped: every command of the one partition committed
    assert receiver.lags and receiver.lags[-1] == ("0", 0)
