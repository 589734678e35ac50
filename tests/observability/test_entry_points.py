"""One canonical line per step delivery and per request, with the context bound at entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from cloudevents.http import CloudEvent
from structlog.testing import capture_logs
from tests.api.conftest import api_settings, bearer
from tests.publishers import RecordingPublisher

from messagedb_agent.api import create_api
from messagedb_agent.pubsub.envelope import MESSAGE_PUBLISHED, encode_push
from messagedb_agent.pubsub.step_handler import StepDelivery
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream
from messagedb_agent.threads.commands import start_thread

CONTEXT = [structlog.contextvars.merge_contextvars]


def test_a_step_delivery_ends_with_one_line_saying_what_it_did_and_spent(
    store: MessageStore, settings: Settings
) -> None:
    engine = build_engine(settings.replace(model_name="offline"), store)
    handler = StepDelivery(engine, RecordingPublisher())
    thread = start_thread(
        store,
        owner=f"obs-{uuid.uuid4().hex[:8]}",
        message="add a task to buy milk",
        now=datetime.now(UTC),
    )
    body = encode_push(
        thread.notification,
        subscription="projects/p/subscriptions/s",
        message_id="m-1",
        delivery_attempt=2,
    )
    event = CloudEvent({"type": MESSAGE_PUBLISHED, "source": "//pubsub.googleapis.com/t"}, body)

    with capture_logs(processors=CONTEXT) as captured:
        handler.handle_event(event)
        handler.handle_event(event)  # the same message again: stale, and said so

    first, again = [line for line in captured if line["event"] == "step done"]
    assert first["outcome"] == "executed"
    assert first["kind"] == "llm_call"
    assert first["steps"] == 3
    assert first["turn_completed"] is True
    assert first["duration_ms"] >= 0
    assert (first["llm_calls"], first["tool_calls"], first["tool_failures"]) == (2, 1, 0)
    assert first["input_tokens"] > 0
    assert first["output_tokens"] > 0
    assert (first["stream_name"], first["position"]) == (thread.stream_name, thread.position)
    assert (first["message_id"], first["delivery_attempt"]) == ("m-1", 2)
    assert again["outcome"] == "stale"
    assert (again["llm_calls"], again["tool_calls"]) == (0, 0)
    assert structlog.contextvars.get_contextvars() == {}  # nothing leaks past the delivery


def test_a_request_ends_with_one_line_naming_the_caller_and_the_thread(
    store: MessageStore, settings: Settings
) -> None:
    user = f"obs-{uuid.uuid4().hex[:8]}"
    api = create_api(lambda: store, RecordingPublisher, api_settings(settings))
    client = api.flask_app().test_client()

    with capture_logs(processors=CONTEXT) as captured:
        created = client.post("/v1/threads", json={"message": "hi"}, headers=bearer(user))
        thread_id = created.get_json()["thread_id"]
        client.get(f"/v1/threads/{thread_id}", headers=bearer(user))
        client.get("/v1/threads/nope")

    started, read, refused = [line for line in captured if line["event"] == "request done"]
    assert (started["method"], started["path"], started["status"]) == ("POST", "/v1/threads", 201)
    assert started["user"] == user
    assert started["stream_name"] == thread_stream(thread_id)
    assert started["duration_ms"] >= 0
    assert (read["status"], read["user"], read["thread_id"]) == (200, user, thread_id)
    assert "stream_name" not in read  # the previous request's context is gone
    assert refused["status"] == 401
    assert "user" not in refused
