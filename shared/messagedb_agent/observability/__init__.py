"""Structured logs in Cloud Logging's format, OpenTelemetry traces across the functions.

Entry points call `configure()` once at import; the rest of the code logs through the stdlib
`logging` module or `get_logger` and opens spans with `tracing.span`. Importing this package
loads structlog and the OpenTelemetry API only; the SDK comes with a configured exporter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from messagedb_agent.observability.logging import bind_context, get_logger, log_context
from messagedb_agent.observability.logging import configure as configure_logging
from messagedb_agent.observability.settings import ObservabilitySettings
from messagedb_agent.observability.tracing import configure_tracing, current_traceparent


def configure(
    json: bool | None = None,
    level: str | int | None = None,
    *,
    stream: TextIO | None = None,
    quiet: Iterable[str] = (),
) -> None:
    """Logging and tracing as the environment says (LOG_FORMAT, LOG_LEVEL, TRACE_EXPORTER)."""
    settings = ObservabilitySettings()
    configure_logging(json, level, stream=stream, settings=settings, quiet=quiet)
    configure_tracing(settings)


__all__ = [
    "ObservabilitySettings",
    "bind_context",
    "configure",
    "configure_logging",
    "configure_tracing",
    "current_traceparent",
    "get_logger",
    "log_context",
]
