"""Publishing to the local stack's built-in topic: the body Pub/Sub's REST publish would get."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from messagedb_agent.notification import Notification
from messagedb_agent.pubsub.http_topic import HttpTopicPublisher
from messagedb_agent.pubsub.publisher import PublishError


def _publisher(answer: int, seen: list[httpx.Request]) -> HttpTopicPublisher:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answer, json={"messageIds": ["1"]})

    publisher = HttpTopicPublisher("http://topic.local/", "p", "steps")
    publisher._client = httpx.Client(transport=httpx.MockTransport(handle))
    return publisher


def test_each_notification_is_a_message_without_an_ordering_key() -> None:
    seen: list[httpx.Request] = []
    stream = f"thread-{uuid.uuid4()}"
    notification = Notification(stream_name=stream, position=4)

    _publisher(200, seen).publish([notification])

    [request] = seen
    assert request.url == "http://topic.local/v1/projects/p/topics/steps:publish"
    [message] = json.loads(request.content)["messages"]
    assert set(message) == {"data", "attributes"}, "no orderingKey: steps need no order"
    assert json.loads(base64.b64decode(message["data"])) == {"stream_name": stream, "position": 4}


def test_a_refusal_is_a_publish_error() -> None:
    with pytest.raises(PublishError, match="HTTP 500"):
        _publisher(500, []).publish(
            [Notification(stream_name=f"thread-{uuid.uuid4()}", position=0)]
        )
