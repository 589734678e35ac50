from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from messagedb_agent.notification import InvalidNotification, Notification
from messagedb_agent.pubsub.envelope import (
    MESSAGE_PUBLISHED,
    cloud_event_headers,
    decode_cloud_event,
    decode_push,
    encode_push,
    push_delivery_attempt,
)

STREAM = f"thread-{uuid.uuid4()}"
SUBSCRIPTION = "projects/p/subscriptions/agent-steps-step"


def _event(data: Any, event_type: str = MESSAGE_PUBLISHED) -> CloudEvent:
    return CloudEvent(
        {"type": event_type, "source": "//pubsub.googleapis.com/projects/p/topics/t"}, data
    )


def _push(payload: bytes) -> dict[str, Any]:
    return {
        "message": {"data": base64.b64encode(payload).decode(), "messageId": "7"},
        "subscription": SUBSCRIPTION,
    }


def test_an_encoded_push_decodes_to_the_same_notification_and_attributes() -> None:
    notification = Notification(stream_name=STREAM, position=4)
    body = encode_push(
        notification,
        subscription=SUBSCRIPTION,
        message_id="42",
        attributes={"traceparent": "00-abc"},
        publish_time=datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
        delivery_attempt=2,
    )

    delivery = decode_cloud_event(_event(body))

    assert delivery.notification == notification
    assert delivery.message_id == "42"
    assert delivery.attributes == {"traceparent": "00-abc"}
    assert delivery.delivery_attempt == 2
    assert body["message"]["publishTime"] == "2026-01-02T03:04:05.600Z"
    assert json.loads(base64.b64decode(body["message"]["data"])) == {
        "stream_name": STREAM,
        "position": 4,
    }


def test_the_emulator_push_body_as_functions_framework_converts_it_decodes() -> None:
    # What functions-framework makes of the emulator's legacy push: the message keeps its
    # data and attributes, gains an "@type", and the subscription is dropped.
    data = base64.b64encode(json.dumps({"stream_name": STREAM, "position": 0}).encode()).decode()
    converted = {
        "message": {
            "@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
            "data": data,
            "attributes": {},
            "messageId": "3",
            "publishTime": "2026-01-01T00:00:00.000Z",
        }
    }

    delivery = decode_cloud_event(_event(converted))

    assert delivery.notification == Notification(stream_name=STREAM, position=0)
    assert delivery.message_id == "3"


def test_cloud_event_headers_name_the_pubsub_event() -> None:
    headers = cloud_event_headers(topic_path="projects/p/topics/t", message_id="9")
    assert headers["ce-type"] == MESSAGE_PUBLISHED
    assert headers["ce-source"] == "//pubsub.googleapis.com/projects/p/topics/t"
    assert headers["ce-id"] == "9"
    assert headers["ce-specversion"] == "1.0"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not an object", "not an object"),
        ({"subscription": SUBSCRIPTION}, "no `message`"),
        ({"message": {"messageId": "1"}}, "`message.data` is missing"),
        ({"message": {"data": 17}}, "`message.data` is missing or not text"),
        ({"message": {"data": "not base64!"}}, "not base64"),
        (_push(b"{not json"), "json"),
        (_push(b"[1, 2]"), "invalid notification"),
        (_push(json.dumps({"stream_name": STREAM}).encode()), "position"),
        (_push(json.dumps({"stream_name": STREAM, "position": -1}).encode()), "position"),
        (
            _push(json.dumps({"stream_name": STREAM, "position": 1, "extra": 1}).encode()),
            "extra",
        ),
        (
            _push(json.dumps({"stream_name": "account-123", "position": 1}).encode()),
            "stream_name",
        ),
        (
            _push(json.dumps({"stream_name": "thread:position-relay", "position": 1}).encode()),
            "stream_name",
        ),
        (
            {
                "message": {
                    "data": _push(json.dumps({"stream_name": STREAM, "position": 1}).encode())[
                        "message"
                    ]["data"],
                    "attributes": ["a"],
                }
            },
            "attributes",
        ),
    ],
    ids=[
        "envelope-not-object",
        "no-message",
        "no-data",
        "data-not-text",
        "bad-base64",
        "not-json",
        "json-not-object",
        "no-position",
        "negative-position",
        "unknown-field",
        "not-a-thread-stream",
        "position-stream",
        "attributes-not-object",
    ],
)
def test_a_malformed_push_is_an_invalid_notification_with_a_reason(body: Any, reason: str) -> None:
    with pytest.raises(InvalidNotification, match=r"(?i)" + reason.replace("`", r"\`")):
        decode_push(body)


def test_an_event_of_another_type_is_an_invalid_notification() -> None:
    body = encode_push(Notification(stream_name=STREAM, position=1), subscription=SUBSCRIPTION)
    with pytest.raises(
        InvalidNotification, match=re.escape("google.cloud.storage.object.v1.finalized")
    ):
        decode_cloud_event(_event(body, "google.cloud.storage.object.v1.finalized"))


@pytest.mark.parametrize(
    ("raw", "attempt"),
    [
        (json.dumps({"message": {}, "subscription": SUBSCRIPTION, "deliveryAttempt": 4}), 4),
        (json.dumps({"message": {}, "subscription": SUBSCRIPTION}), None),
        (json.dumps({"deliveryAttempt": 0}), None),  # no dead-letter policy: not counted
        (json.dumps({"deliveryAttempt": True}), None),
        (json.dumps({"deliveryAttempt": "2"}), None),
        ("[1, 2]", None),
        ("null", None),
        ("{not json", None),
        (b"\xff\xfe", None),
    ],
    ids=["counted", "absent", "zero", "bool", "text", "array", "null", "not-json", "not-utf8"],
)
def test_the_delivery_attempt_is_read_from_a_raw_push_body_or_is_none(
    raw: str | bytes, attempt: int | None
) -> None:
    assert push_delivery_attempt(raw.encode() if isinstance(raw, str) else raw) == attempt
