"""Step notifications on Pub/Sub: one message per notification, confirmed before returning.

A notification's message is the JSON `{"stream_name", "position"}` and carries the W3C
`traceparent` of the current span so the step continues the trace. Batches flush after a few
milliseconds: a step waits for its follow-up's confirmation, so latency matters more than
throughput here.

Messages have no ordering key, and the client does not order them. The step protocol does not
need order: a step reads the thread and acts only on its head, so a notification that arrives
late, twice or out of turn is stale and acknowledged with nothing done, and the newest one
always finds the work. Keys would buy nothing (the push subscription does not enable message
ordering, so Pub/Sub delivers keyed messages in no particular order anyway) and cost something:
after a failed publish the client fails every later publish with that key until it is resumed,
and a subscription that did order them would hold a thread's newer notifications (a user's next
message among them) behind one in backoff. https://cloud.google.com/pubsub/docs/ordering,
https://cloud.google.com/pubsub/docs/samples/pubsub-resume-publish-with-ordering-keys
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson
from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind

from messagedb_agent.notification import Notification
from messagedb_agent.observability import semconv
from messagedb_agent.observability.tracing import span
from messagedb_agent.settings import Settings

BATCH_MAX_LATENCY_SECONDS = 0.005
BATCH_MAX_MESSAGES = 100
_TRACE_KEYS = ("traceparent", "tracestate")


class PublishError(RuntimeError):
    """Pub/Sub did not confirm a notification; the caller should fail so its input is retried."""


def encode(notification: Notification) -> bytes:
    return orjson.dumps(
        {"stream_name": notification.stream_name, "position": notification.position}
    )


@contextmanager
def send_span(topic: str, count: int) -> Iterator[Span]:
    """The `send {topic}` span of one publish (OpenTelemetry's messaging conventions, Pub/Sub's
    flavour). PRODUCER, because its context is the messages' creation context: the
    `traceparent` they carry is this span's, so the consumer's `process` span continues it."""
    attributes: dict[str, str | int | None] = {
        semconv.MESSAGING_SYSTEM: semconv.SYSTEM_GCP_PUBSUB,
        semconv.MESSAGING_OPERATION_TYPE: semconv.OPERATION_SEND,
        semconv.MESSAGING_OPERATION_NAME: semconv.OPERATION_SEND,
        semconv.MESSAGING_DESTINATION_NAME: topic,
        # "SHOULD NOT set messaging.batch.message_count on spans that operate with a single message"
        semconv.MESSAGING_BATCH_MESSAGE_COUNT: count if count > 1 else None,
    }
    name = semconv.messaging_span_name(semconv.OPERATION_SEND, topic)
    with span(name, kind=SpanKind.PRODUCER, attributes=attributes) as current:
        yield current


def trace_attributes() -> dict[str, str]:
    """The current W3C trace context as message attributes; empty when no span is current."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: carrier[key] for key in _TRACE_KEYS if carrier.get(key)}


@lru_cache(maxsize=4)
def shared_client(emulator_host: str | None) -> Any:
    """One client (and its channel and batch threads) per process and endpoint.

    The endpoint is part of the key because the SDK reads `PUBSUB_EMULATOR_HOST` when the
    client is made; the argument itself is only that key.
    """
    from google.cloud import pubsub_v1  # type: ignore[import-untyped]  # heavy: first use only

    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(
            max_messages=BATCH_MAX_MESSAGES, max_latency=BATCH_MAX_LATENCY_SECONDS
        ),
    )


class PubSubPublisher:
    """The NotificationPublisher of the cloud (and of the local stack, via the emulator)."""

    def __init__(
        self, project: str, topic: str, *, client: Any | None = None, timeout: float = 30.0
    ) -> None:
        self.topic = topic
        self.topic_path = f"projects/{project}/topics/{topic}"
        self.timeout = timeout
        self._client = client
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> PubSubPublisher:
        return cls(
            settings.pubsub_project,
            settings.pubsub.pubsub_topic,
            timeout=settings.pubsub.pubsub_publish_timeout_seconds,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = shared_client(os.environ.get("PUBSUB_EMULATOR_HOST"))
        return self._client

    def publish(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        with send_span(self.topic, len(notifications)) as current:
            self._publish(notifications, current)

    def _publish(self, notifications: Sequence[Notification], current: Span) -> None:
        client = self.client
        attributes = trace_attributes()  # the send span's context
        futures = [
            (
                notification,
                client.publish(self.topic_path, encode(notification), **attributes),
            )
            for notification in notifications
        ]
        failures: list[tuple[Notification, BaseException]] = []
        message_ids: list[str] = []
        for notification, future in futures:
            try:
                message_ids.append(str(future.result(timeout=self.timeout)))
            except Exception as exc:
                failures.append((notification, exc))
        if not failures:
            if len(message_ids) == 1:  # "if span describes operation on a single message"
                current.set_attribute(semconv.MESSAGING_MESSAGE_ID, message_ids[0])
            return
        first, error = failures[0]
        raise PublishError(
            f"Pub/Sub did not confirm {len(failures)} of {len(futures)} notifications to "
            f"{self.topic_path} (first: {first.stream_name}@{first.position}): "
            f"{type(error).__name__}: {error}"
        ) from error
