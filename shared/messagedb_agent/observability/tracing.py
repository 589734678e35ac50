"""OpenTelemetry spans, and the W3C trace context that makes one user turn one trace.

The context travels in Pub/Sub message attributes (`traceparent`): ingest's span is current
when it publishes, the step function continues from the attributes it receives, and each step
publishes its follow-up from inside its own span, so the whole chain shares one trace id.

Only the API (`opentelemetry.trace`, which the Pub/Sub client imports anyway) is loaded at
import. The SDK, and an exporter, are loaded by `configure_tracing` only when TRACE_EXPORTER
asks for one. Without an SDK every span is a non-recording one that carries its parent's
context on, so a trace id arriving from outside (Cloud Run's front end sets `traceparent`)
still reaches every function's log lines.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

if TYPE_CHECKING:
    from messagedb_agent.settings import Settings

log = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "messagedb_agent"
GCP_EXPORTER_MODULE = "opentelemetry.exporter.cloud_trace"
FLUSH_TIMEOUT_MILLIS = 2000

P = ParamSpec("P")
R = TypeVar("R")
AttributeValue = str | bool | int | float | tuple[str, ...]

_provider: TracerProvider | None = None  # ours (configured, or a test's); else the global one
_tracer: Tracer | None = None


def use_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Send this package's spans to `provider` (None: the global one); returns the previous.

    The global provider can be set once per process; this one can be swapped, which is what
    tests need to collect spans in memory.
    """
    global _provider, _tracer
    previous = _provider
    _provider, _tracer = provider, None
    return previous


def tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        provider = _provider or trace.get_tracer_provider()
        _tracer = provider.get_tracer(INSTRUMENTATION_NAME)
    return _tracer


class Carrier(Protocol):
    """Where trace context is read from: message attributes, or HTTP headers (any case)."""

    def get(self, key: str, /) -> str | None: ...


def extract(carrier: Carrier) -> Context:
    """The trace context a message or request carries (W3C `traceparent`/`tracestate`).

    The mapping is read as is: HTTP headers must stay case-insensitive."""
    return propagate.extract(carrier)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, for event metadata; None without one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue | None] | None = None,
    parent: Context | None = None,
) -> Iterator[Span]:
    """A current span; an exception marks it failed with its type (never its message, which
    may quote user content) and propagates.

    Without an SDK (nothing can record) and without a `parent` to continue, the current span
    is yielded as it is: a new non-recording span would carry the very same context, and
    attaching it costs more than the rest of a tool call's bookkeeping together."""
    if parent is None and not can_record():
        yield trace.get_current_span()
        return
    clean = _attributes(attributes or {})
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=clean,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            if not _failed(current):  # a more telling error kind set inside is kept
                mark_failed(current, type(exc).__name__)
            raise


def can_record() -> bool:
    """Whether a span started now could record: an SDK provider is installed (ours, a test's
    or the global one). Callers skip building attributes when it is not."""
    provider = _provider or trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def traced(
    name: str, *, kind: SpanKind = SpanKind.INTERNAL
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of `span`, for functions that are one unit of work."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(name, kind=kind):
                return func(*args, **kwargs)

        return wrapper

    return decorate


def annotate(attributes: Mapping[str, AttributeValue | None]) -> None:
    """Add attributes to the current span (None values are left out)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_attributes(attributes))


def mark_failed(target: Span, error_type: str) -> None:
    target.set_attribute("error.type", error_type)
    target.set_status(Status(StatusCode.ERROR, error_type))


def _failed(target: Span) -> bool:
    status = getattr(target, "status", None)  # SDK spans have one; non-recording ones do not
    return isinstance(status, Status) and status.status_code is StatusCode.ERROR


def _attributes(values: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {key: value for key, value in values.items() if value is not None}


# -- where spans go ----------------------------------------------------------------------------


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """Install an SDK provider with the exporter TRACE_EXPORTER names; None for `none`.

    Batched export, flushed by `flush()` at the end of each invocation: a serverless instance
    may get no CPU between requests, so a background export cannot be relied on.
    """
    exporter_name = settings.observability.trace_exporter
    if exporter_name == "none":
        return None
    if _provider is not None:
        return _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create({"service.name": settings.k_service or "messagedb-agent"})
    provider = SdkTracerProvider(resource=resource)
    if exporter_name == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        exporter = _gcp_exporter(settings.google_cloud_project)
        if exporter is None:
            return None
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    use_provider(provider)
    return provider


def _gcp_exporter(project: str | None) -> Any:
    try:
        module = importlib.import_module(GCP_EXPORTER_MODULE)
    except ImportError:
        log.warning(
            "TRACE_EXPORTER=gcp needs the opentelemetry-exporter-gcp-trace package; "
            "spans are not exported (trace context still propagates)"
        )
        return None
    try:
        return module.CloudTraceSpanExporter(project_id=project)
    except Exception as exc:  # no credentials, most likely: run on, untraced
        log.warning("the Cloud Trace exporter could not start; spans are not exported: %s", exc)
        return None


def flush(timeout_millis: int = FLUSH_TIMEOUT_MILLIS) -> None:
    """Export what is buffered before the instance may be frozen; no-op without an SDK."""
    force_flush = getattr(_provider, "force_flush", None)
    if force_flush is None:
        return
    try:
        force_flush(timeout_millis)
    except Exception:
        log.warning("could not flush spans", exc_info=True)
