"""Spans across the functions: one user turn is one trace, from the request to the last step."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from opentelemetry.trace import SpanKind, StatusCode
from tests.api.conftest import api_settings, bearer
from tests.imports import loaded_by
from tests.observability.conftest import FakePublisherClient, Spans, observability_settings

from messagedb_agent.api import create_api
from messagedb_agent.events import ToolCall
from messagedb_agent.llm.offline import OFFLINE_MODEL_NAME
from messagedb_agent.llm.types import LLMConfig, LLMError, LLMResponse, Message, ToolSpec
from messagedb_agent.notification import Notification
from messagedb_agent.observability import current_traceparent, tracing
from messagedb_agent.observability.instrumented import TracedLLM
from messagedb_agent.observability.tracing import configure_tracing, span
from messagedb_agent.pubsub.envelope import MESSAGE_PUBLISHED, encode_push
from messagedb_agent.pubsub.publisher import PubSubPublisher
from messagedb_agent.pubsub.step_handler import StepDelivery
from messagedb_agent.relay.run import relay_once
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def offline(settings: Settings) -> Settings:
    return settings.replace(model_name="offline")


@pytest.fixture
def client() -> FakePublisherClient:
    return FakePublisherClient()


@pytest.fixture
def publisher(client: FakePublisherClient) -> PubSubPublisher:
    return PubSubPublisher("obs-project", "agent-steps", client=client)


def _event(notification: Notification, **attributes: str) -> CloudEvent:
    body = encode_push(
        notification, subscription="projects/p/subscriptions/s", attributes=attributes
    )
    return CloudEvent({"type": MESSAGE_PUBLISHED, "source": "//pubsub.googleapis.com/t"}, body)


def _thread(store: MessageStore, message: str) -> Any:
    owner = f"obs-{uuid.uuid4().hex[:8]}"
    return start_thread(store, owner=owner, message=message, now=datetime.now(UTC))


def test_a_step_through_the_real_engine_has_a_span_per_model_call_and_per_tool_call(
    store: MessageStore, offline: Settings, publisher: PubSubPublisher, spans: Spans
) -> None:
    handler = StepDelivery(build_engine(offline, store), publisher)
    thread = _thread(store, "add a task to buy milk")

    result = handler.handle_event(_event(thread.notification))

    assert result is not None
    assert result.turn_completed
    step = spans.one("process")
    assert step.kind is SpanKind.CONSUMER
    assert step.attributes is not None
    assert step.attributes["agent.stream_name"] == thread.stream_name
    assert step.attributes["agent.step.outcome"] == "executed"
    assert step.attributes["agent.step.count"] == 3  # model, tool, model
    chats = spans.named("chat offline")
    assert len(chats) == 2
    for chat in chats:
        assert chat.parent is not None
        assert chat.parent.span_id == step.context.span_id
        attributes = chat.attributes or {}
        assert attributes["gen_ai.request.model"] == "offline"
        assert attributes["gen_ai.response.model"] == OFFLINE_MODEL_NAME
        assert int(attributes["gen_ai.usage.input_tokens"]) > 0  # type: ignore[arg-type]
        assert int(attributes["gen_ai.usage.output_tokens"]) > 0  # type: ignore[arg-type]
    tool = spans.one("execute_tool add_task")
    assert tool.parent is not None
    assert tool.parent.span_id == step.context.span_id
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "add_task"
    assert tool.attributes["agent.tool.ok"] is True
    assert tool.status.status_code is StatusCode.UNSET


def test_publishing_sends_the_traceparent_of_its_producer_span(
    publisher: PubSubPublisher, client: FakePublisherClient, spans: Spans
) -> None:
    first = Notification(stream_name=f"thread-{uuid.uuid4()}", position=0)
    second = Notification(stream_name=f"thread-{uuid.uuid4()}", position=3)

    with span("ingest") as outer:
        publisher.publish([first, second])
    publisher.publish([first])  # outside any trace: a trace of its own

    publishes = spans.named("send agent-steps")
    inside = next(s for s in publishes if s.parent is not None)
    assert inside.kind is SpanKind.PRODUCER
    assert inside.parent is not None
    assert inside.parent.span_id == outer.get_span_context().span_id
    expected = f"00-{outer.get_span_context().trace_id:032x}-{inside.context.span_id:016x}-"
    assert [(t or "")[:-2] for t in client.traceparents[:2]] == [expected, expected]
    assert (inside.attributes or {})["messaging.batch.message_count"] == 2
    alone = client.traceparents[2]
    assert alone is not None
    assert f"{outer.get_span_context().trace_id:032x}" not in alone


def test_a_delivery_continues_the_trace_its_message_carries_and_passes_it_on(
    store: MessageStore,
    offline: Settings,
    publisher: PubSubPublisher,
    client: FakePublisherClient,
    spans: Spans,
) -> None:
    handler = StepDelivery(build_engine(offline, store), publisher, max_steps=1)
    thread = _thread(store, "what time is it")

    handler.handle_event(_event(thread.notification, traceparent=TRACEPARENT))

    step = spans.one("process")
    assert step.context.trace_id == TRACE_ID
    assert step.parent is not None
    assert step.parent.span_id == PARENT_ID
    assert step.parent.is_remote
    assert {s.context.trace_id for s in spans.finished} == {TRACE_ID}
    [follow_up] = client.traceparents
    assert follow_up is not None
    assert follow_up.startswith(f"00-{TRACE_ID:032x}-")


def test_an_ingest_request_continues_the_callers_trace_into_the_notification(
    store: MessageStore,
    settings: Settings,
    publisher: PubSubPublisher,
    client: FakePublisherClient,
    spans: Spans,
) -> None:
    api = create_api(lambda: store, lambda: publisher, api_settings(settings))
    headers = {**bearer(f"obs-{uuid.uuid4().hex[:8]}"), "traceparent": TRACEPARENT}

    response = (
        api.flask_app()
        .test_client()
        .post("/v1/threads", json={"message": "hello"}, headers=headers)
    )

    assert response.status_code == 201
    request = spans.one("POST /v1/threads")
    assert request.kind is SpanKind.SERVER
    assert request.context.trace_id == TRACE_ID
    assert request.parent is not None
    assert request.parent.span_id == PARENT_ID
    assert (request.attributes or {})["http.response.status_code"] == 201
    assert (request.attributes or {})["http.route"] == "/v1/threads"
    [sent] = client.traceparents
    assert sent is not None
    assert sent.startswith(f"00-{TRACE_ID:032x}-")


def test_a_failed_model_call_marks_its_span_with_the_error_kind(spans: Spans) -> None:
    class Overloaded:
        def call(
            self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
        ) -> LLMResponse:
            raise LLMError("try later", kind="rate_limit", retryable=True, status=429)

    with pytest.raises(LLMError):
        TracedLLM(Overloaded()).call([], [], LLMConfig(model="gemini-2.5-flash"))

    chat = spans.one("chat gemini-2.5-flash")
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes is not None
    assert chat.attributes["error.type"] == "rate_limit"
    assert chat.attributes["http.response.status_code"] == 429
    assert chat.attributes["agent.llm.retryable"] is True


def test_a_relay_run_is_one_span_with_what_it_did(
    store: MessageStore, publisher: PubSubPublisher, spans: Spans
) -> None:
    _thread(store, "hello")

    report = relay_once(store, publisher, datetime.now(UTC))

    relay = spans.one("relay")
    assert relay.parent is None
    assert relay.attributes is not None
    assert relay.attributes["relay.read"] == report.read
    assert relay.attributes["relay.published"] == report.published
    for publish in spans.named("send "):
        assert publish.context.trace_id == relay.context.trace_id


def test_the_current_traceparent_names_the_current_span(spans: Spans) -> None:
    assert current_traceparent() is None
    with span("work") as current:
        context = current.get_span_context()
        traceparent = current_traceparent()
        assert traceparent is not None
        assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")


def test_no_exporter_is_installed_unless_one_is_asked_for(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert configure_tracing(observability_settings(trace_exporter="none")) is None
    # The Cloud Trace exporter is an optional package; without it tracing says so and stays
    # off instead of failing the function's start.
    monkeypatch.setattr(tracing, "GCP_EXPORTER_MODULE", "opentelemetry.exporter.not_installed")
    with caplog.at_level(logging.WARNING):
        assert configure_tracing(observability_settings(trace_exporter="gcp")) is None
    assert "opentelemetry-exporter-gcp-trace" in caplog.text


def test_importing_the_functions_code_does_not_load_the_tracing_sdk() -> None:
    functions_code = (
        "messagedb_agent.observability, messagedb_agent.pubsub.step_handler, "
        "messagedb_agent.api.app"
    )
    assert loaded_by(functions_code, "opentelemetry.sdk") == []


def test_without_an_sdk_spans_cost_nothing_and_a_parent_still_carries_its_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace

    from messagedb_agent.observability import semconv
    from messagedb_agent.observability.instrumented import TracedTools
    from messagedb_agent.tools.context import ToolContext, ToolOutcome

    assert not tracing.can_record()

    def no_attributes(stream_name: str) -> str:
        raise AssertionError("span attributes were built although nothing records them")

    monkeypatch.setattr(semconv, "conversation_id", no_attributes)

    class Tools:
        def specs(self) -> list[ToolSpec]:
            return []

        def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
            return ToolOutcome(True, {"ok": True}, None, None, False, 0.1)

    ctx = ToolContext(
        owner="u",
        stream_name="thread-x",
        step_id="s",
        tool_call_id="c",
        store=None,
        now=datetime.now(UTC),
    )
    assert TracedTools(Tools()).run(ToolCall(id="c", name="t", arguments={}), ctx).ok

    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    parent = tracing.extract({"traceparent": traceparent})
    with span("step", parent=parent):
        context = trace.get_current_span().get_span_context()
        assert format(context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
