"""Pushes the step function can never process, through functions-framework's request path.

Pub/Sub treats any answer but 102, 200, 201, 202 and 204 as a failed delivery and pushes the
same bytes again until the dead-letter topic; a body that cannot be turned into a step is the
same body on every attempt, so it must be acknowledged (and logged) on the first.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from messagedb_agent.pubsub.envelope import cloud_event_headers

SUBSCRIPTION = "projects/test-project/subscriptions/agent-steps-step"
JSON = "application/json"


def _push(data: Any, **message: Any) -> bytes:
    """A push envelope as Pub/Sub sends it, with `message.data` as given (already encoded)."""
    body = {"message": {"data": data, "messageId": "m-1", **message}, "subscription": SUBSCRIPTION}
    return json.dumps(body).encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


UNPROCESSABLE: list[tuple[str, bytes, str]] = [
    ("json-array", b"[1, 2, 3]", JSON),
    ("json-null", b"null", JSON),
    ("json-string", b'"hello"', JSON),
    ("json-number", b"17", JSON),
    ("empty-body", b"", JSON),
    ("not-json", b"\x00\xffthis is not json", JSON),
    ("object-not-a-push", b'{"hello": "world"}', JSON),
    (
        "no-message-data",
        json.dumps({"message": {"messageId": "m-1"}, "subscription": SUBSCRIPTION}).encode(),
        JSON,
    ),
    (
        "no-message-id",
        json.dumps({"message": {"data": _b64(b"{}")}, "subscription": SUBSCRIPTION}).encode(),
        JSON,
    ),
    (
        "message-not-object",
        json.dumps({"message": [1], "subscription": SUBSCRIPTION}).encode(),
        JSON,
    ),
    ("data-a-number", _push(17), JSON),
    ("data-null", _push(None), JSON),
    ("data-empty", _push(""), JSON),
    ("base64-garbage", _push("!!not*base64??"), JSON),
    ("base64-of-non-json", _push(_b64(b"\x00\x01not json")), JSON),
    ("base64-of-json-array", _push(_b64(b"[1, 2]")), JSON),
    ("base64-of-another-object", _push(_b64(b'{"stream_name": "account-1", "position": 1}')), JSON),
    ("text-plain", _push(_b64(b'{"stream_name": "x", "position": 1}')), "text/plain"),
    ("form-body", b"message=hello&subscription=x", "application/x-www-form-urlencoded"),
    ("no-content-type", _push(_b64(b"[]")), ""),
    ("structured-cloud-event-garbage", b"{not json", "application/cloudevents+json"),
    ("structured-cloud-event-array", b"[1, 2]", "application/cloudevents+json"),
]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [case[1:] for case in UNPROCESSABLE],
    ids=[case[0] for case in UNPROCESSABLE],
)
def test_a_push_that_can_never_be_processed_is_acknowledged_and_logged(
    load_function: Callable[[str], FlaskClient],
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
) -> None:
    client = load_function("step")
    headers = {"Content-Type": content_type} if content_type else {}

    with caplog.at_level(logging.WARNING):
        response = client.post("/", data=body, headers=headers)

    assert response.status_code in (200, 204), response.get_data(as_text=True)
    assert any("acknowledged" in r.getMessage() for r in caplog.records), caplog.text


def test_a_cloud_event_whose_data_is_not_a_push_is_acknowledged(
    load_function: Callable[[str], FlaskClient],
) -> None:
    client = load_function("step")
    headers = cloud_event_headers(topic_path="projects/test-project/topics/t", message_id="9")

    response = client.post("/", data=b"[1, 2]", headers=headers)

    assert response.status_code == 200


def test_a_request_that_is_no_push_at_all_keeps_its_http_error(
    load_function: Callable[[str], FlaskClient],
) -> None:
    client = load_function("step")

    response = client.get("/")

    assert response.status_code == 405
