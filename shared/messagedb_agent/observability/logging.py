"""Log lines as Cloud Logging reads them (JSON on Cloud Run), and readable ones locally.

One processor chain serves our structlog loggers and the stdlib `logging` records of the rest
of the code and its libraries (through `ProcessorFormatter`), so every line has the same shape:
the context bound at the entry point (stream, user, turn), `severity`, the trace and span of
the current OpenTelemetry span (which puts the line under its trace in the console), `message`,
and nothing secret or long (`Redactor`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.stdlib import ProcessorFormatter
from structlog.typing import Processor

from messagedb_agent.observability.redaction import Redactor
from messagedb_agent.settings import Settings
from messagedb_agent.settings.serving import ObservabilitySettings

HANDLER_NAME = "messagedb_agent"
TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
LABELS_KEY = "logging.googleapis.com/labels"
# Context that becomes Cloud Logging labels: indexed, so "every line of this thread" is a filter.
LABEL_KEYS = ("stream_name", "thread_id", "user", "turn_id", "event_type", "step_kind")
SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
}
# Chatty at INFO, and their lines add nothing ours do not say.
QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "google.auth", "google.api_core", "grpc")


class CloudLogging:
    """Processor: `severity`, trace correlation and labels under Cloud Logging's special keys."""

    def __init__(self, project: str | None) -> None:
        self.project = project

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        level = str(event_dict.pop("level", method_name)).lower()
        event_dict["severity"] = SEVERITY.get(level, "DEFAULT")
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            trace_id = format(context.trace_id, "032x")
            event_dict[TRACE_KEY] = (
                f"projects/{self.project}/traces/{trace_id}" if self.project else trace_id
            )
            event_dict[SPAN_KEY] = format(context.span_id, "016x")
            event_dict[SAMPLED_KEY] = context.trace_flags.sampled
        labels = {
            key: str(event_dict.pop(key)) for key in LABEL_KEYS if event_dict.get(key) is not None
        }
        if labels:
            event_dict[LABELS_KEY] = labels
        return event_dict


def add_trace_id(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The console's short form of trace correlation: the trace id alone."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
    return event_dict


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"LOG_LEVEL {level!r} is not a level (DEBUG, INFO, WARNING, ERROR)")
    return number


def configure(
    json: bool | None = None,
    level: str | int | None = None,
    *,
    stream: TextIO | None = None,
    settings: Settings | None = None,
    quiet: Iterable[str] = (),
) -> None:
    """Route structlog and the stdlib through one chain to one handler on the root logger.

    `json` None follows LOG_FORMAT (JSON on Cloud Run, console elsewhere); `stream` None
    means stdout for JSON (what Cloud Run collects) and stderr for the console (so a
    command's output stays pipeable); loggers named in `quiet` write errors only; without
    `settings`, the defaults (console, INFO). Calling it again replaces the handler it
    installed and leaves every other handler alone.
    """
    observability = settings.observability if settings else ObservabilitySettings()
    as_json = (settings is not None and settings.json_logs) if json is None else json
    threshold = _level(level if level is not None else observability.log_level)
    redact = Redactor(observability.log_max_body_chars)
    pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    rendering: list[Processor]
    if as_json:
        rendering = [
            CloudLogging(settings.google_cloud_project if settings else None),
            structlog.processors.EventRenamer("message"),
            redact,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ]
    else:
        colors = stream.isatty() if stream is not None else getattr(sys.stderr, "isatty", bool)()
        rendering = [
            add_trace_id,
            redact,
            structlog.dev.ConsoleRenderer(
                colors=colors,
                exception_formatter=structlog.dev.plain_traceback,
                timestamp_key="time",
            ),
        ]
    formatter = ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            *rendering,
        ],
    )
    handler = logging.StreamHandler(stream or (sys.stdout if as_json else sys.stderr))
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING))
    for name in quiet:
        logging.getLogger(name).setLevel(max(threshold, logging.ERROR))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *pre_chain,
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _default_to_stdlib() -> None:
    """Until `configure` runs, our structlog lines are plain stdlib records ("step done
    outcome=executed ..."), so a host application's logging config (or pytest's) sees them."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.format_exc_info,
            Redactor(),
            structlog.dev.ConsoleRenderer(
                colors=False, pad_event_to=0, exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


_default_to_stdlib()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_context(**values: Any) -> None:
    """Add context to every later line of this request or delivery (None values skipped)."""
    structlog.contextvars.bind_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    )


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """A fresh logging context for one request or delivery, whatever the thread served before;
    the previous context is back afterwards."""
    saved = structlog.contextvars.get_contextvars()
    structlog.contextvars.clear_contextvars()
    bind_context(**values)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**saved)
