"""OpenTelemetry at the edges: W3C trace context in Kafka headers, and the exporter set-up.

Kafka headers are ``(str, bytes)`` pairs; the context travels as ``traceparent`` (and
``tracestate``). Nothing here is called from ``decide`` or ``evolve``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actors.messaging import SCHEMA_URL

__all__ = [
    "Headers",
    "configure_telemetry",
    "context_from_headers",
    "current_headers",
    "enabled",
    "flush",
    "headers_from_context",
    "refresh",
    "sdk_disabled",
    "tracer",
    "wanted_signals",
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


_RECHECK_S = 1.0


class _Provider:
    """Whether an SDK tracer provider is installed, as last looked up, and when."""

    installed = False
    checked_at = float("-inf")


def enabled() -> bool:
    """Whether a real tracer provider (an SDK) is installed; spans are no-ops otherwise.
    Called once per command sent, and OpenTelemetry's lookup reads the environment on every
    call while no provider is set, so "not yet" is looked up again at most once a second
    (``refresh`` looks now). Once installed, the global provider cannot be replaced, so
    "installed" is final."""
    if _Provider.installed:
        return True
    if time.monotonic() - _Provider.checked_at < _RECHECK_S:
        return False
    return refresh()


def refresh() -> bool:
    """Look up now whether an SDK tracer provider is installed (after installing one)."""
    _Provider.checked_at = time.monotonic()
    _Provider.installed = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _Provider.installed


def current_headers() -> Headers | None:
    """Trace headers for the caller's current span, or None when there is none."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    return headers_from_context()


def tracer() -> trace.Tracer:
    """The project's tracer from the global provider (a no-op until one is configured)."""
    return trace.get_tracer("eventledger", schema_url=SCHEMA_URL)


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


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """``OTEL_SDK_DISABLED=true`` (case-insensitive): no SDK, every span and metric a no-op."""
    env = os.environ if environ is None else environ
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def wanted_signals(environ: Mapping[str, str] | None = None) -> tuple[bool, bool]:
    """Whether traces and metrics are to be exported over OTLP: the general endpoint
    (``OTEL_EXPORTER_OTLP_ENDPOINT``) or the signal's own (``..._TRACES_ENDPOINT``,
    ``..._METRICS_ENDPOINT``) is set, and the SDK is not disabled."""
    env = os.environ if environ is None else environ
    if sdk_disabled(env):
        return False, False
    general = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())
    traces = general or bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip())
    metrics_ = general or bool(env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip())
    return traces, metrics_


def configure_telemetry(service_name: str) -> bool:
    """Install SDK trace and meter providers exporting over OTLP, each iff its endpoint is
    set (``wanted_signals``; the exporters read the endpoints and the other ``OTEL_*``
    variables themselves) and ``OTEL_SDK_DISABLED`` is not true. Returns whether any is
    installed. Idempotent per process: a provider someone else installed first (a test's,
    an application's) is kept."""
    traces, metrics_ = wanted_signals()
    if not (traces or metrics_):
        return False
    from opentelemetry import metrics
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": service_name}, schema_url=SCHEMA_URL)
    if traces and not refresh():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        refresh()
    if metrics_ and _is_proxy(metrics.get_meter_provider()):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    log.info("exporting telemetry over OTLP (traces %s, metrics %s)", traces, metrics_)
    return True


def flush(timeout_millis: int = 10_000) -> None:
    """Export what the SDK providers (if any) still buffer: before a process or actor ends."""
    from opentelemetry import metrics

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            try:
                force_flush(timeout_millis)
            except Exception as e:  # an unreachable collector must not stop a shutdown
                log.warning("telemetry flush failed: %s", e)


def _is_proxy(provider: object) -> bool:
    return type(provider).__name__.startswith(("_Proxy", "Proxy"))
