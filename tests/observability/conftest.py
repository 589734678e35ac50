"""Spans collected in memory and log lines captured as parsed JSON, for one test at a time."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from messagedb_agent.observability import tracing
from messagedb_agent.observability.logging import HANDLER_NAME, configure
from messagedb_agent.settings import Settings

PROJECT = "obs-project"


class Spans:
    """The spans finished so far, by name."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    @property
    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [span for span in self.finished if span.name.startswith(prefix)]

    def one(self, prefix: str) -> ReadableSpan:
        found = self.named(prefix)
        assert len(found) == 1, [span.name for span in self.finished]
        return found[0]


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use_provider(provider)
    try:
        yield Spans(exporter)
    finally:
        tracing.use_provider(previous)
        provider.shutdown()


def observability_settings(**values: Any) -> Settings:
    """Explicit settings only, never the developer's environment or `.env`."""
    base: dict[str, Any] = {"google_cloud_project": PROJECT, "k_service": None}
    return Settings.model_validate({**base, **values})


LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def configure_logs() -> Iterator[Callable[..., io.StringIO]]:
    """Configure logging into a buffer; everything is put back afterwards."""
    root = logging.getLogger()
    level, config = root.level, structlog.get_config()

    def make(json: bool = True, level: str = "DEBUG", **values: Any) -> io.StringIO:
        buffer = io.StringIO()
        configure(json, level, stream=buffer, settings=observability_settings(**values))
        return buffer

    yield make
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)


@pytest.fixture
def json_logs(configure_logs: Callable[..., io.StringIO]) -> LogLines:
    """JSON logging at DEBUG with a 200-character limit; call the result for the lines so far."""
    buffer = configure_logs(json=True)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    return lines


class _Confirmed:
    def result(self, timeout: float | None = None) -> str:
        return "message-id"


class FakePublisherClient:
    """Stands in for `pubsub_v1.PublisherClient`: records what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> _Confirmed:
        self.sent.append((topic, data, attributes))
        return _Confirmed()

    @property
    def traceparents(self) -> list[str | None]:
        return [attributes.get("traceparent") for *_, attributes in self.sent]
