"""A whole conversation, logged as on Cloud Run: every line is scanned for what must not be there.

The real ingest API (bearer token, through Flask's test client), the real engine with the
offline model, the real database; logging at DEBUG, as JSON, with a 200-character limit. A
library that logs a connection string and an Authorization header is played too, because
that is how secrets usually reach logs: not through our own lines.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from cloudevents.http import CloudEvent
from tests.api.conftest import SECRET, api_settings
from tests.observability.conftest import LogLines, Spans
from tests.publishers import RecordingPublisher

from messagedb_agent.api import create_api, issue_dev_token
from messagedb_agent.observability import get_logger
from messagedb_agent.observability.logging import LABELS_KEY, TRACE_KEY
from messagedb_agent.pubsub.envelope import MESSAGE_PUBLISHED, encode_push
from messagedb_agent.pubsub.step_handler import StepDelivery
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream

LIMIT = 200
LIBRARY_PASSWORD = "pw-0f9e8d7c6b5a"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _deliver_all(handler: StepDelivery, publisher: RecordingPublisher) -> None:
    """Run the step function on everything ingest published, as Pub/Sub would."""
    while publisher.published:
        notification = publisher.published.pop(0)
        body = encode_push(notification, subscription="projects/p/subscriptions/steps")
        handler.handle_event(
            CloudEvent({"type": MESSAGE_PUBLISHED, "source": "//pubsub.googleapis.com/t"}, body)
        )


def test_a_conversation_logs_no_token_secret_password_or_long_body(
    json_logs: LogLines,
    spans: Spans,
    store: MessageStore,
    settings: Settings,
    database_url: str,
) -> None:
    user = f"obs-{uuid.uuid4().hex[:8]}"
    token = issue_dev_token(user, SECRET)
    auth = {"Authorization": f"Bearer {token}"}
    publisher = RecordingPublisher()
    api = create_api(lambda: store, lambda: publisher, api_settings(settings))
    client = api.flask_app().test_client()
    engine = build_engine(settings.replace(model_name="offline"), store)
    handler = StepDelivery(engine, RecordingPublisher())
    long_title = "call the plumber about the leaking kitchen tap " * 8

    started = client.post("/v1/threads", json={"message": "add a task to buy milk"}, headers=auth)
    assert started.status_code == 201
    thread_id = started.get_json()["thread_id"]
    _deliver_all(handler, publisher)
    added = client.post(
        f"/v1/threads/{thread_id}/messages",
        json={"message": f"add a task to {long_title}"},
        headers=auth,
    )
    assert added.status_code == 202
    _deliver_all(handler, publisher)
    detail = client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()
    assert client.get("/v1/threads", headers={"Authorization": "Bearer not-a-jwt"}).status_code
    library = f"postgresql://agent:{LIBRARY_PASSWORD}@db.internal:5432/app"
    logging.getLogger("some.library").info("connecting to %s with %s", library, auth)
    get_logger("some.library").info("retrying", dsn=library, headers=auth, body=long_title)

    assert detail["counts"]["tool_calls"] == 2  # the conversation really happened
    lines = json_logs()
    forbidden = [token, token.split(".")[-1], SECRET, LIBRARY_PASSWORD]
    password = urlsplit(database_url).password
    if password:
        forbidden.append(password)
    for line in lines:
        for text in _strings(line):
            for secret in forbidden:
                assert secret not in text, line
            assert len(text) <= LIMIT, line
    messages = [line["message"] for line in lines]
    assert messages.count("request done") == 4
    steps = [line for line in lines if line["message"] == "step done"]
    assert [line["outcome"] for line in steps] == ["executed", "executed"]
    stream = thread_stream(thread_id)
    assert all(line[LABELS_KEY]["stream_name"] == stream for line in steps)
    assert all(TRACE_KEY in line for line in steps)
    requests = [line for line in lines if line["message"] == "request done"]
    assert all(line[LABELS_KEY]["user"] == user for line in requests[:3])
    assert any("postgresql://agent:***@db.internal" in line["message"] for line in lines)
