"""OpenTelemetry at the edges: W3C trace context in Kafka headers, and the exporter set-up.

Kafka headers are ``(str, bytes)`` pairs; the context travels as ``traceparent`` (and
``tracestate``). Nothing here is called from ``decide`` or ``evolve``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "Headers",
    "configure_telemetry",
    "context_from_headers",
    "current_headers",
    "enabled",
    "headers_from_context",
    "tracer",
]

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_KEYS = frozenset({"traceparent", "tracestate"})


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k == key and v is not None]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


_GETTER = _HeaderGetter()


def enabled() -> bool:
    """Whether a real tracer provider (an SDK) is installed; spans are no-ops otherwise."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def current_headers() -> Headers | None:
    """Trace headers for the caller's current span, or None when there is none."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    return headers_from_context()


def tracer() -> trace.Tracer:
    """The project's tracer from the global provider (a no-op until one is configured)."""
    return trace.get_tracer("eventledger")


def context_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> Context | None:
    """The remote parent carried by ``headers``, or None when there is none."""
    if not headers or not any(k == "traceparent" for k, _ in headers):
        return None
    return _PROPAGATOR.extract(headers, getter=_GETTER)


def headers_from_context(
    context: Context | None = None, base: Iterable[tuple[str, bytes]] = ()
) -> Headers:
    """``base`` (minus any old trace keys) plus the trace context of ``context``/current."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    kept = [(k, v) for k, v in base if k not in _TRACE_KEYS]
    return kept + [(k, v.encode("latin-1")) for k, v in carrier.items()]


def configure_telemetry(service_name: str) -> bool:
    """Install SDK trace and meter providers exporting over OTLP iff
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the exporters read the other ``OTEL_*``
    variables themselves). Returns whether they are installed. Idempotent per process:
    a provider someone else installed first (a test's, an application's) is kept."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    if enabled():
        return True
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    log.info("exporting telemetry over OTLP to %s", os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
    return True
