from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import structlog
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from structlog.testing import capture_logs
from tests.engine.doubles import new_thread
from tests.pubsub.emulator import Emulator

from messagedb_agent.notification import Notification
from messagedb_agent.observability import semconv, tracing
from messagedb_agent.pubsub.envelope import cloud_event_headers, encode_push
from messagedb_agent.stack.processes import free_port
from messagedb_agent.store.client import MessageStore

SUBSCRIPTION = "projects/test-project/subscriptions/agent-steps-step"


def _types(store: MessageStore, stream: str) -> list[str]:
    return [m.type for m in store.get_stream_messages(stream)]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_provider(previous)
        provider.shutdown()


def test_the_emulator_push_body_runs_a_step_and_publishes_the_follow_up(
    load_function: Callable[[str], FlaskClient],
    store: MessageStore,
    pubsub_emulator: Emulator,
    topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEP_MAX_STEPS", "1")  # one step per delivery, so one follow-up
    client = load_function("step")
    thread = new_thread(store, "hello")
    body = encode_push(thread.notification, subscription=SUBSCRIPTION, message_id="1")

    # The legacy push body, no CloudEvent headers: functions-framework converts it.
    response = client.post("/", json=body)

    assert response.status_code == 200
    assert _types(store, thread.stream_name)[-1] == "LLMResponseReceived"
    head = store.stream_version(thread.stream_name)
    published = [json.loads(m.data) for m in pubsub_emulator.pull(topic, expected=1)]
    assert published == [{"stream_name": thread.stream_name, "position": head}]


def test_an_eventarc_cloud_event_runs_a_step(
    load_function: Callable[[str], FlaskClient], store: MessageStore
) -> None:
    client = load_function("step")
    thread = new_thread(store, "hello")
    body = encode_push(thread.notification, subscription=SUBSCRIPTION, message_id="2")
    headers = cloud_event_headers(topic_path="projects/test-project/topics/t", message_id="2")

    response = client.post("/", data=json.dumps(body), headers=headers)

    assert response.status_code == 200
    assert _types(store, thread.stream_name)[-1] == "LLMResponseReceived"


def test_a_malformed_push_is_acknowledged_not_retried(
    load_function: Callable[[str], FlaskClient],
) -> None:
    client = load_function("step")
    body = encode_push(
        Notification(stream_name="thread-00000000-0000-4000-8000-000000000000", position=0),
        subscription=SUBSCRIPTION,
    )
    body["message"]["data"] = "bm90IGpzb24="  # "not json"

    response = client.post("/", json=body)

    assert response.status_code == 200


def test_an_unreachable_database_answers_an_error_so_pubsub_redelivers(
    load_function: Callable[[str], FlaskClient],
    function_env: pytest.MonkeyPatch,
    store: MessageStore,
) -> None:
    function_env.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    function_env.setenv("DB_CONNECT_TIMEOUT", "1")
    client = load_function("step")
    thread = new_thread(store, "hello")

    response = client.post("/", json=encode_push(thread.notification, subscription=SUBSCRIPTION))

    assert response.status_code == 500
    assert _types(store, thread.stream_name)[-1] == "UserMessageAdded"


def test_the_push_delivery_attempt_reaches_the_step_log_line_and_span(
    load_function: Callable[[str], FlaskClient],
    store: MessageStore,
    spans: InMemorySpanExporter,
) -> None:
    client = load_function("step")
    thread = new_thread(store, "hello")
    # A redelivery as Pub/Sub pushes it with a dead-letter policy: `deliveryAttempt` sits
    # beside `message`, where functions-framework's conversion to a CloudEvent drops it.
    body = encode_push(
        thread.notification, subscription=SUBSCRIPTION, message_id="m-3", delivery_attempt=3
    )

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as lines:
        response = client.post("/", json=body)

    assert response.status_code == 200
    done = [line for line in lines if line["event"] == "step done"]
    assert [(d["message_id"], d["delivery_attempt"]) for d in done] == [("m-3", 3)]
    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert span.attributes is not None
    assert span.attributes[semconv.MESSAGING_DELIVERY_ATTEMPT] == 3
    assert span.attributes[semconv.MESSAGING_MESSAGE_ID] == "m-3"
