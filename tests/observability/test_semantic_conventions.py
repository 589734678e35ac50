"""The spans speak OpenTelemetry's semantic conventions, checked on spans collected in memory.

GenAI (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/): an inference span
`chat {model}` with the provider, the conversation, the request and the usage; an
`execute_tool {tool}` span with the tool's name, type and call id. Messaging, Pub/Sub's flavour
(https://opentelemetry.io/docs/specs/semconv/messaging/gcp-pubsub/): `send {topic}` and
`process {topic}` with the operation, the destination, the subscription, the message id and
the delivery attempt. HTTP server spans carry `url.scheme`. No attribute of ours sits in a
namespace another convention uses (`llm.*`, `tool.*`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from tests.api.conftest import api_settings, bearer
from tests.observability.conftest import FakePublisherClient, Spans, observability_settings

from messagedb_agent.api import create_api
from messagedb_agent.events import TokenUsage, ToolCall
from messagedb_agent.llm.types import LLMConfig, LLMResponse, Message, ToolSpec
from messagedb_agent.notification import Notification
from messagedb_agent.observability import configure, semconv
from messagedb_agent.observability.entry_points import (
    configure_messaging,
    delivery_scope,
    request_scope,
)
from messagedb_agent.observability.instrumented import TracedLLM, TracedTools, tallying
from messagedb_agent.pubsub.envelope import MESSAGE_PUBLISHED, encode_push
from messagedb_agent.pubsub.publisher import PubSubPublisher
from messagedb_agent.pubsub.step_handler import StepDelivery
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread
from messagedb_agent.tools.context import ToolContext, ToolOutcome

FOREIGN_NAMESPACES = ("llm.", "tool.")


@pytest.fixture(autouse=True)
def unnamed_messaging() -> Iterator[None]:
    """Each test starts with no topic or subscription configured, and leaves none behind."""
    configure_messaging(None)
    yield
    configure_messaging(None)


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _no_foreign_names(span: ReadableSpan) -> None:
    foreign = [k for k in _attributes(span) if k.startswith(FOREIGN_NAMESPACES)]
    assert not foreign, f"{span.name}: {foreign} belong to other conventions"


def _thread() -> str:
    return f"thread-{uuid.uuid4()}"


class Answering:
    """A model client that answers at once, with usage that includes cached input."""

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        return LLMResponse(
            text="hi",
            tool_calls=(),
            model_name=f"{config.model}-001",
            token_usage=TokenUsage(input_tokens=120, output_tokens=7, cached_input_tokens=100),
            finish_reason="stop",
        )


# -- GenAI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gemini-3.8-flash", "claude-sonnet-5-5"])
def test_a_model_call_is_an_inference_span_of_the_vertex_ai_provider(
    spans: Spans, model: str
) -> None:
    config = LLMConfig(model=model, max_output_tokens=8192, temperature=0.2)
    with tallying(conversation_id="5f0e3c1e-0000-4000-8000-000000000001"):
        TracedLLM(Answering()).call([], [], config)

    chat = spans.one(f"chat {model}")
    assert chat.kind is SpanKind.CLIENT
    attributes = _attributes(chat)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attributes["gen_ai.conversation.id"] == "5f0e3c1e-0000-4000-8000-000000000001"
    assert attributes["gen_ai.request.model"] == model
    assert attributes["gen_ai.request.max_tokens"] == 8192
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.response.model"] == f"{model}-001"
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    _no_foreign_names(chat)


def test_the_offline_model_is_an_in_process_provider_of_its_own(spans: Spans) -> None:
    TracedLLM(Answering()).call([], [], LLMConfig(model="offline"))

    chat = spans.one("chat offline")
    assert chat.kind is SpanKind.INTERNAL, "a model in the same process MAY be INTERNAL"
    assert _attributes(chat)["gen_ai.provider.name"] == "messagedb_agent.offline"
    assert "gen_ai.conversation.id" not in _attributes(chat), "no thread outside a delivery"


def test_providers_are_the_specs_well_known_values() -> None:
    assert semconv.provider_name("gemini-3.5-flash-lite") == "gcp.vertex_ai"
    assert semconv.provider_name("claude-haiku-4-5@20251001") == "gcp.vertex_ai"
    assert semconv.provider_name("Offline") == "messagedb_agent.offline"
    assert semconv.provider_name("something-else") == "gcp.gen_ai"


def test_a_tool_call_is_an_execute_tool_span_of_a_function_tool(spans: Spans) -> None:
    class Tools:
        def specs(self) -> list[ToolSpec]:
            return []

        def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
            return ToolOutcome(ok=True, result={"done": True})

    stream = _thread()
    ctx = ToolContext(
        owner="u",
        stream_name=stream,
        step_id="s1",
        tool_call_id="call-7",
        store=None,
        now=datetime.now(UTC),
    )
    TracedTools(Tools()).run(ToolCall(id="call-7", name="add_task", arguments={}), ctx)

    tool = spans.one("execute_tool add_task")
    assert tool.kind is SpanKind.INTERNAL
    attributes = _attributes(tool)
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "add_task"
    assert attributes["gen_ai.tool.type"] == "function"
    assert attributes["gen_ai.tool.call.id"] == "call-7"
    assert attributes["gen_ai.conversation.id"] == stream.removeprefix("thread-")
    _no_foreign_names(tool)


def test_a_delivery_names_its_thread_as_the_conversation_of_its_model_calls(
    store: MessageStore, settings: Settings, spans: Spans
) -> None:
    offline = settings.replace(model_name="offline")
    handler = StepDelivery(
        build_engine(offline, store),
        PubSubPublisher("p", "agent-steps", client=FakePublisherClient()),
    )
    owner = f"obs-{uuid.uuid4().hex[:8]}"
    thread = start_thread(
        store, owner=owner, message="add a task to buy milk", now=datetime.now(UTC)
    )
    body = encode_push(thread.notification, subscription="projects/p/subscriptions/s")
    event = CloudEvent({"type": MESSAGE_PUBLISHED, "source": "//pubsub.googleapis.com/t"}, body)

    handler.handle_event(event)

    thread_id = thread.thread_id
    chats = spans.named("chat offline")
    assert chats
    assert {_attributes(c)["gen_ai.conversation.id"] for c in chats} == {thread_id}
    assert _attributes(spans.one("execute_tool add_task"))["gen_ai.conversation.id"] == thread_id
    for span in spans.finished:
        _no_foreign_names(span)


# -- messaging ---------------------------------------------------------------------------------


def test_publishing_one_notification_is_a_send_span_with_its_message_id(spans: Spans) -> None:
    publisher = PubSubPublisher("p", "agent-steps", client=FakePublisherClient())

    publisher.publish([Notification(stream_name=_thread(), position=0)])

    send = spans.one("send agent-steps")
    assert send.kind is SpanKind.PRODUCER, "its context is the message's creation context"
    attributes = _attributes(send)
    assert attributes["messaging.system"] == "gcp_pubsub"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["messaging.operation.name"] == "send"
    assert attributes["messaging.destination.name"] == "agent-steps"
    assert attributes["messaging.message.id"] == "message-id"
    assert "messaging.batch.message_count" not in attributes, "not on a single message"


def test_publishing_a_batch_counts_its_messages(spans: Spans) -> None:
    publisher = PubSubPublisher("p", "agent-steps", client=FakePublisherClient())

    publisher.publish([Notification(stream_name=_thread(), position=n) for n in range(3)])

    attributes = _attributes(spans.one("send agent-steps"))
    assert attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in attributes, "a batch has no one message id"


def test_a_delivery_is_a_process_span_with_the_subscription_and_the_attempt(spans: Spans) -> None:
    notification = Notification(stream_name=_thread(), position=2)

    with delivery_scope(
        notification,
        {},
        message_id="m-1",
        delivery_attempt=3,
        topic="projects/p/topics/agent-steps",
        subscription="projects/p/subscriptions/agent-steps-step",
    ):
        pass

    process = spans.one("process agent-steps")
    assert process.kind is SpanKind.CONSUMER, "push-based: process, no receive span"
    attributes = _attributes(process)
    assert attributes["messaging.system"] == "gcp_pubsub"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.operation.name"] == "process"
    assert attributes["messaging.destination.name"] == "agent-steps"
    assert attributes["messaging.destination.subscription.name"] == "agent-steps-step"
    assert attributes["messaging.message.id"] == "m-1"
    assert attributes["messaging.gcp_pubsub.message.delivery_attempt"] == 3


def test_the_settings_name_the_topic_and_subscription_a_delivery_comes_from(
    spans: Spans, configure_logs: Any
) -> None:
    configure_logs()
    settings = observability_settings(pubsub_topic="steps-x", pubsub_subscription="push-x")
    configure(settings, json=True)
    notification = Notification(stream_name=_thread(), position=0)

    with delivery_scope(notification, {}, message_id="m-2"):
        pass

    process = spans.one("process steps-x")
    assert _attributes(process)["messaging.destination.subscription.name"] == "push-x"
    assert "messaging.gcp_pubsub.message.delivery_attempt" not in _attributes(process)


def test_without_a_known_topic_the_span_is_named_after_the_operation_alone(spans: Spans) -> None:
    with delivery_scope(Notification(stream_name=_thread(), position=0), {}):
        pass

    process = spans.one("process")
    assert process.name == "process"
    assert "messaging.destination.name" not in _attributes(process)


# -- HTTP --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ({}, "http"),
        ({"X-Forwarded-Proto": "https"}, "https"),
        (
            {
                "Forwarded": 'for=1.2.3.4;proto="https";host=api.example',
                "X-Forwarded-Proto": "http",
            },
            "https",
        ),
    ],
)
def test_a_request_span_has_the_original_clients_url_scheme(
    spans: Spans, headers: dict[str, str], scheme: str
) -> None:
    with request_scope("GET", "/healthz", headers) as outcome:
        outcome.status = 200

    request = spans.one("GET")
    assert request.kind is SpanKind.SERVER
    attributes = _attributes(request)
    assert attributes["url.scheme"] == scheme
    assert attributes["url.path"] == "/healthz"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200


def test_an_ingest_request_behind_cloud_runs_front_end_is_https(
    store: MessageStore, settings: Settings, spans: Spans
) -> None:
    publisher = PubSubPublisher("p", "agent-steps", client=FakePublisherClient())
    api = create_api(lambda: store, lambda: publisher, api_settings(settings))
    headers = {**bearer(f"obs-{uuid.uuid4().hex[:8]}"), "X-Forwarded-Proto": "https"}

    response = (
        api.flask_app().test_client().post("/v1/threads", json={"message": "hi"}, headers=headers)
    )

    assert response.status_code == 201
    request = spans.one("POST /v1/threads")
    assert _attributes(request)["url.scheme"] == "https"
    assert _attributes(request)["http.route"] == "/v1/threads"
