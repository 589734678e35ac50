"""The built-in topic: Pub/Sub's publish call in, Eventarc-style CloudEvent pushes out."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from messagedb_agent.notification import Notification
from messagedb_agent.pubsub.envelope import MESSAGE_PUBLISHED, decode_push
from messagedb_agent.pubsub.http_topic import HttpTopicPublisher
from messagedb_agent.pubsub.publisher import PublishError
from messagedb_agent.stack.local_topic import LocalTopic


class Endpoint:
    """An HTTP endpoint that fails its first `failures` requests, recording every one."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append((dict(self.headers), body))
                failing = len(endpoint.requests) <= endpoint.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    served = Endpoint(failures=request.param)
    yield served
    served.server.shutdown()


@pytest.fixture
def topic(endpoint: Endpoint) -> Iterator[LocalTopic]:
    local = LocalTopic("p", "steps", endpoint.url, max_attempts=3, min_backoff=0.05)
    local.start()
    yield local
    local.stop()


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("endpoint", [2], indirect=True)
def test_a_published_notification_is_pushed_as_a_cloud_event_until_accepted(
    endpoint: Endpoint, topic: LocalTopic
) -> None:
    notification = Notification(stream_name=f"thread-{uuid.uuid4()}", position=3)

    HttpTopicPublisher(topic.url, "p", "steps").publish([notification])

    _wait(lambda: topic.delivered == 1)
    assert topic.delivered == 1
    assert len(endpoint.requests) == 3
    headers, body = endpoint.requests[-1]
    assert headers["ce-type"] == MESSAGE_PUBLISHED
    assert headers["ce-source"] == "//pubsub.googleapis.com/projects/p/topics/steps"
    delivery = decode_push(body)
    assert delivery.notification == notification
    assert delivery.delivery_attempt == 3
    assert body["subscription"] == "projects/p/subscriptions/agent-steps-step"


@pytest.mark.parametrize("endpoint", [100], indirect=True)
def test_a_push_that_keeps_failing_is_dead_lettered(endpoint: Endpoint, topic: LocalTopic) -> None:
    notification = Notification(stream_name=f"thread-{uuid.uuid4()}", position=0)

    HttpTopicPublisher(topic.url, "p", "steps").publish([notification])

    _wait(lambda: bool(topic.dead_letters))
    assert [d.attempts for d in topic.dead_letters] == [3]
    assert topic.dead_letters[0].last_error == "HTTP 500"
    assert len(endpoint.requests) == 3
    assert topic.delivered == 0


@pytest.mark.parametrize("endpoint", [0], indirect=True)
def test_publishing_to_another_topic_or_garbage_is_refused(topic: LocalTopic) -> None:
    notification = Notification(stream_name=f"thread-{uuid.uuid4()}", position=0)

    with pytest.raises(PublishError, match="404"):
        HttpTopicPublisher(topic.url, "p", "other").publish([notification])
    garbage = httpx.post(f"{topic.url}/v1/projects/p/topics/steps:publish", content=b"{")
    assert garbage.status_code == 400
    empty = httpx.post(f"{topic.url}/v1/projects/p/topics/steps:publish", json={"messages": []})
    assert empty.status_code == 400


def test_an_absent_topic_is_a_publish_error() -> None:
    publisher = HttpTopicPublisher("http://127.0.0.1:9", "p", "steps", timeout=2)
    with pytest.raises(PublishError, match="did not answer"):
        publisher.publish([Notification(stream_name=f"thread-{uuid.uuid4()}", position=0)])
