"""Structured logs in Cloud Logging's format, OpenTelemetry traces across the functions.

Entry points call `configure(settings)` once at start; the rest of the code logs through the
stdlib `logging` module or `get_logger` and opens spans with `tracing.span`. Importing this
package loads structlog and the OpenTelemetry API only; the SDK comes with a configured exporter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from messagedb_agent.observability.logging import bind_context, get_logger, log_context
from messagedb_agent.observability.logging import configure as configure_logging
from messagedb_agent.observability.tracing import configure_tracing, current_traceparent

if TYPE_CHECKING:
    from messagedb_agent.settings import Settings


def configure(
    settings: Settings | None = None,
    *,
    json: bool | None = None,
    level: str | int | None = None,
    stream: TextIO | None = None,
    quiet: Iterable[str] = (),
) -> None:
    """Logging and tracing as the settings say (LOG_FORMAT, LOG_LEVEL, TRACE_EXPORTER).

    Without settings (a process that logs before it has read them): console logs at the
    default level and no exporter; `configure_tracing` can follow once they are read.
    """
    configure_logging(json, level, stream=stream, settings=settings, quiet=quiet)
    if settings is not None:
        configure_tracing(settings)
        # the delivery spans' topic and subscription; imported here, as the entry points load
        # the engine's types, which importing this package must not
        from messagedb_agent.observability.entry_points import configure_messaging

        configure_messaging(settings)


__all__ = [
    "bind_context",
    "configure",
    "configure_logging",
    "configure_tracing",
    "current_traceparent",
    "get_logger",
    "log_context",
]
