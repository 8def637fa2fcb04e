"""OpenTelemetry traces, on only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set.

`configure()` is called once at process start (arkloop/asgi.py for Daphne, `runagents` for the
runner). When the variable is unset it returns at once: no SDK is imported, no instrumentation is
installed, and `ENABLED` stays False, which is all the hooks on hot paths look at. When it is set:
a TracerProvider exporting OTLP/HTTP protobuf in batches (the SDK reads the standard `OTEL_*`
variables: endpoint, headers, service name, batch delays), the official psycopg instrumentation,
and in Daphne the official Django instrumentation (one span per request).

Every span of a run is in the run's trace (its `trace_id`, 32 hex = an OpenTelemetry trace id):
spans that start a trace here take a given trace id through `forced_trace_id()` instead of a
random one (the id generator below), so the runner's `invoke_agent` span and an event stream's
span join the trace of the request that created the run.
"""
from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

ENABLED = False
EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"  # probes and scrapes make no spans (Daphne: never reach Django)
_forced: contextvars.ContextVar[int | None] = contextvars.ContextVar("arkloop_forced_trace_id", default=None)
_tracer: Any = None


def wanted() -> bool:
    """Tracing is asked for: an OTLP endpoint is configured and the SDK is not disabled."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(endpoint) and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def configure(*, service_name: str, django: bool = False) -> bool:
    """Set up tracing for this process if it is wanted; returns whether it is on.

    `django`: also install the Django instrumentation. Call it before Django's middleware chain
    is built (get_asgi_application), since the instrumentation adds its middleware to settings.
    """
    global ENABLED, _tracer
    if ENABLED or not wanted():
        return ENABLED
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes), sampler=_sampler(),
                              id_generator=_id_generator())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    if django:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=EXCLUDED_URLS,
                                        response_hook=_name_request_span)
    _tracer = trace.get_tracer("arkloop")
    ENABLED = True
    log.info("OpenTelemetry tracing on (service %s)", Resource.create(attributes).attributes.get(SERVICE_NAME))
    return True


def tracer() -> Any:
    return _tracer


def trace_id_int(trace_id: str | None) -> int | None:
    """A 32-hex trace id as OpenTelemetry's integer, or None when it is not one."""
    try:
        value = int(trace_id or "", 16)
    except ValueError:
        return None
    return value if len(trace_id) == 32 and value else None


def span_trace_id() -> str | None:
    """The trace id of the current span (32 hex), when there is a valid one."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@contextmanager
def forced_trace_id(trace_id: str | None) -> Iterator[None]:
    """Spans that start a new trace inside this block get `trace_id` (when it is a valid one)."""
    token = _forced.set(trace_id_int(trace_id))
    try:
        yield
    finally:
        _forced.reset(token)


def _id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunTraceIds(RandomIdGenerator):
        """Random ids, except a root span's trace id inside `forced_trace_id()`."""

        def generate_trace_id(self) -> int:
            return _forced.get() or super().generate_trace_id()

    return RunTraceIds()


def _sampler() -> Any:
    """The sampler the `OTEL_TRACES_SAMPLER` variables choose (default: parent-based, always on),
    except that client spans with no parent are dropped: a database query outside any request or
    run (the runner's claim polling, the stream hub) would otherwise be a one-span trace of its
    own, several per second."""
    from opentelemetry.sdk.trace import sampling
    from opentelemetry.trace import SpanKind, get_current_span

    delegate = sampling._get_from_env_or_default()

    class NoOrphanClientSpans(sampling.Sampler):
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                          trace_state=None):
            if kind == SpanKind.CLIENT and not get_current_span(parent_context).get_span_context().is_valid:
                return sampling.SamplingResult(sampling.Decision.DROP)
            return delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"NoOrphanClientSpans{{{delegate.get_description()}}}"

    return NoOrphanClientSpans()


def _name_request_span(span: Any, request: Any, response: Any) -> None:
    """`POST /v1/threads/{thread_id}/runs` rather than Django's raw URL pattern."""
    from arkloop.metrics import route_label

    if span.is_recording():
        span.update_name(f"{request.method} {route_label(getattr(request, 'resolver_match', None))}")
