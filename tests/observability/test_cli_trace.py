"""A CLI turn (`start`, `continue`) is one trace: one root span, every step's spans under it,
and the user's message carries that trace's traceparent, as ingest writes it."""

from __future__ import annotations

import re
import uuid

from opentelemetry.sdk.trace import ReadableSpan
from tests.observability.conftest import Spans
from typer.testing import CliRunner

from messagedb_agent.cli import TURN_SPAN, app
from messagedb_agent.events import UserMessageAdded
from messagedb_agent.observability import semconv
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream
from messagedb_agent.threads.reading import read_thread

runner = CliRunner()


def _turn(env: dict[str, str], *args: str) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _one_trace(found: list[ReadableSpan]) -> tuple[int, ReadableSpan]:
    assert found
    trace_ids = {span.context.trace_id for span in found if span.context}
    assert len(trace_ids) == 1, [span.name for span in found]
    roots = [span for span in found if span.parent is None]
    assert [root.name for root in roots] == [TURN_SPAN], [span.name for span in found]
    return trace_ids.pop(), roots[0]


def _trace_id_of(traceparent: str | None) -> int:
    assert traceparent
    return int(traceparent.split("-")[1], 16)


def test_each_cli_turn_is_one_trace_with_one_root(
    database_url: str, store: MessageStore, spans: Spans
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_NAME": "offline",
        "LOCAL_USER": f"cli-{uuid.uuid4().hex[:8]}",
        "TRACE_EXPORTER": "none",
    }
    output = _turn(env, "start", "add a task to buy milk")
    found = re.search(r"thread ([0-9a-f-]{36})", output)
    assert found, output
    thread = found.group(1)
    first_trace, root = _one_trace(spans.finished)
    assert (root.attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID) == thread
    names = [span.name for span in spans.finished]
    assert any(name.startswith(semconv.OPERATION_CHAT) for name in names), names
    assert any(name.startswith(semconv.OPERATION_EXECUTE_TOOL) for name in names), names

    spans.exporter.clear()
    _turn(env, "continue", thread, "what are my tasks")
    second_trace, _ = _one_trace(spans.finished)
    assert second_trace != first_trace

    messages = [
        item
        for item in read_thread(store, thread_stream(thread))
        if isinstance(item.event, UserMessageAdded)
    ]
    assert [_trace_id_of(item.metadata.traceparent) for item in messages] == [
        first_trace,
        second_trace,
    ]
