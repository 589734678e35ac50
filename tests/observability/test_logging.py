"""Log lines: Cloud Logging's JSON on Cloud Run, readable text locally, one chain for all."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pytest
import structlog
from structlog.testing import capture_logs
from tests.observability.conftest import PROJECT, LogLines, Spans, observability_settings

from messagedb_agent.observability import bind_context, get_logger, log_context
from messagedb_agent.observability.logging import LABELS_KEY, SAMPLED_KEY, SPAN_KEY, TRACE_KEY
from messagedb_agent.observability.tracing import span


def test_a_json_line_has_severity_message_time_and_the_bound_context_as_labels(
    json_logs: LogLines,
) -> None:
    with log_context(stream_name="thread-1", user="ada", turn_id="turn-9"):
        get_logger("tests.obs").info("step done", outcome="executed", steps=2)

    [line] = json_logs()
    assert line["severity"] == "INFO"
    assert line["message"] == "step done"
    assert "event" not in line
    assert (line["outcome"], line["steps"]) == ("executed", 2)
    assert line["logger"] == "tests.obs"
    assert line["time"].endswith("Z")
    assert line[LABELS_KEY] == {"stream_name": "thread-1", "user": "ada", "turn_id": "turn-9"}
    assert TRACE_KEY not in line  # no span is current


def test_a_line_written_inside_a_span_names_its_trace_and_span(
    json_logs: LogLines, spans: Spans
) -> None:
    with span("step") as current:
        get_logger("tests.obs").warning("slow")
    context = current.get_span_context()

    [line] = json_logs()
    assert line["severity"] == "WARNING"
    assert line[TRACE_KEY] == f"projects/{PROJECT}/traces/{context.trace_id:032x}"
    assert line[SPAN_KEY] == f"{context.span_id:016x}"
    assert line[SAMPLED_KEY] is True


def test_stdlib_records_come_out_in_the_same_shape_with_their_traceback(
    json_logs: LogLines,
) -> None:
    stdlib = logging.getLogger("messagedb_agent.engine.step")
    with log_context(stream_name="thread-2"):
        stdlib.warning("llm call failed: %s (%s, attempt %s)", "overloaded", "rate_limit", 2)
        try:
            raise RuntimeError("the adapter broke")
        except RuntimeError:
            stdlib.exception("step failed")

    warning, error = json_logs()
    assert warning["message"] == "llm call failed: overloaded (rate_limit, attempt 2)"
    assert warning["severity"] == "WARNING"
    assert warning["logger"] == "messagedb_agent.engine.step"
    assert warning[LABELS_KEY] == {"stream_name": "thread-2"}
    assert error["severity"] == "ERROR"
    assert "Traceback" in error["exception"]
    assert "RuntimeError: the adapter broke" in error["exception"]


def test_lines_below_the_level_are_not_written(
    configure_logs: Callable[..., io.StringIO],
) -> None:
    buffer = configure_logs(json=True, level="WARNING")
    get_logger("tests.obs").info("quiet")
    logging.getLogger("tests.obs").info("quiet too")
    get_logger("tests.obs").error("loud")
    assert [json.loads(line)["message"] for line in buffer.getvalue().splitlines()] == ["loud"]


def test_the_console_format_is_readable_text_not_json(
    configure_logs: Callable[..., io.StringIO],
) -> None:
    buffer = configure_logs(json=False)
    with log_context(stream_name="thread-3"):
        get_logger("tests.obs").info("step done", outcome="executed")
    logging.getLogger("tests.obs").warning("from the %s", "stdlib")

    first, second = buffer.getvalue().splitlines()
    assert "step done" in first
    assert "outcome=executed" in first
    assert "stream_name=thread-3" in first
    assert "from the stdlib" in second
    assert not first.lstrip().startswith("{")


def test_a_log_context_is_fresh_inside_and_restored_after() -> None:
    bind_context(user="outer")
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
            with log_context(stream_name="thread-4"):
                bind_context(user="inner")
                get_logger("tests.obs").info("inside")
            get_logger("tests.obs").info("after")
    finally:
        structlog.contextvars.clear_contextvars()

    inside, after = captured
    assert (inside["stream_name"], inside["user"]) == ("thread-4", "inner")
    assert after["user"] == "outer"
    assert "stream_name" not in after


@pytest.mark.parametrize(
    ("values", "json_logs_expected"),
    [
        ({}, False),
        ({"k_service": "step"}, True),
        ({"k_service": "step", "log_format": "console"}, False),
        ({"log_format": "json"}, True),
    ],
)
def test_json_is_the_format_on_cloud_run_unless_log_format_says_otherwise(
    values: dict[str, str], json_logs_expected: bool
) -> None:
    assert observability_settings(**values).json_logs is json_logs_expected


def test_an_unknown_level_is_a_clear_error(configure_logs: Callable[..., io.StringIO]) -> None:
    with pytest.raises(ValueError, match="LOG_LEVEL 'LOUD' is not a level"):
        configure_logs(level="LOUD")
