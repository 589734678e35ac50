"""The Pub/Sub push envelope, both ways: decode what the step function receives, and build it.

What arrives at the step function is a CloudEvent of type
`google.cloud.pubsub.topic.v1.messagePublished` whose data is
`{"message": {"data": <base64>, "attributes": {...}, "messageId": ...}, "subscription": ...}`.
In GCP, Eventarc sends exactly that. Locally, the emulator pushes the legacy body (the same
`{"message", "subscription"}` JSON, no CloudEvent headers) and functions-framework's
`cloud_event` target converts it (`event_conversion.background_event_to_cloud_event`
recognises a raw Pub/Sub push by its `subscription` and `message.messageId` keys), so one
decoder serves both. The built-in fallback transport sends the GCP shape: `encode_push` for
the body and `cloud_event_headers` for binary-mode CloudEvent headers.

The conversion keeps `message` only: the envelope's `deliveryAttempt` (sent when the
subscription has a dead-letter policy) is lost on the way, so the step function reads it from
the request body itself with `push_delivery_attempt`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from messagedb_agent.notification import InvalidNotification, Notification
from messagedb_agent.pubsub.publisher import encode

MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
PUBSUB_SOURCE = "//pubsub.googleapis.com/"


class CloudEventLike(Protocol):
    """What functions-framework hands the function (cloudevents' CloudEvent)."""

    data: Any

    def get(self, key: str, default: Any = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered notification with what Pub/Sub said about it."""

    notification: Notification
    message_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    delivery_attempt: int | None = None


def decode_cloud_event(event: CloudEventLike) -> Delivery:
    event_type = event.get("type")
    if event_type != MESSAGE_PUBLISHED:
        raise InvalidNotification(
            f"invalid notification: event type {event_type!r}, expected {MESSAGE_PUBLISHED}"
        )
    return decode_push(event.data)


def decode_push(body: Any) -> Delivery:
    """Decode the envelope's data: `{"message": {...}, "subscription": ...}`."""
    if not isinstance(body, Mapping):
        raise InvalidNotification(
            f"invalid notification: the envelope is {type(body).__name__}, not an object"
        )
    message = body.get("message")
    if not isinstance(message, Mapping):
        raise InvalidNotification("invalid notification: the envelope has no `message` object")
    raw = message.get("data")
    if not isinstance(raw, str) or not raw:
        raise InvalidNotification("invalid notification: `message.data` is missing or not text")
    try:
        payload = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidNotification(
            f"invalid notification: `message.data` is not base64 ({exc})"
        ) from exc
    notification = Notification.parse_json(payload)
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise InvalidNotification("invalid notification: `message.attributes` is not an object")
    return Delivery(
        notification=notification,
        message_id=_text(message.get("messageId") or message.get("message_id")),
        attributes={str(k): str(v) for k, v in attributes.items()},
        delivery_attempt=_attempt(body.get("deliveryAttempt")),
    )


def push_delivery_attempt(raw: bytes) -> int | None:
    """The `deliveryAttempt` of a raw push body; None when the body is not a push that has one.

    Never raises: the attempt only annotates logs and spans, and a body too broken to read it
    from is refused (and acknowledged) by the decoder, not here.
    """
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return _attempt(body.get("deliveryAttempt")) if isinstance(body, Mapping) else None


def encode_push(
    message: Notification | bytes,
    *,
    subscription: str,
    message_id: str | None = None,
    attributes: Mapping[str, str] | None = None,
    publish_time: datetime | None = None,
    delivery_attempt: int | None = None,
) -> dict[str, Any]:
    """The push body Pub/Sub would send (and Eventarc's event data), for a notification or
    for a message already encoded (what the fallback topic stores)."""
    data = encode(message) if isinstance(message, Notification) else message
    published = _timestamp(publish_time or datetime.now(UTC))
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(data).decode("ascii"),
            "attributes": dict(attributes or {}),
            "messageId": message_id or uuid.uuid4().hex,
            "publishTime": published,
        },
        "subscription": subscription,
    }
    if delivery_attempt is not None:
        body["deliveryAttempt"] = delivery_attempt
    return body


def cloud_event_headers(
    *, topic_path: str, message_id: str, time: datetime | None = None
) -> dict[str, str]:
    """Binary-mode CloudEvent headers for a push body, as Eventarc sends them."""
    return {
        "ce-specversion": "1.0",
        "ce-type": MESSAGE_PUBLISHED,
        "ce-source": f"{PUBSUB_SOURCE}{topic_path}",
        "ce-id": message_id,
        "ce-time": _timestamp(time or datetime.now(UTC)),
        "content-type": "application/json",
    }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _attempt(value: Any) -> int | None:
    """Pub/Sub counts from 1; 0 means "not counted" (no dead-letter policy), so it is no attempt."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None
