"""Where work enters a function: an ingest request, a step delivery, a relay run.

Each gets a fresh logging context (functions-framework reuses threads, and a thread must not
carry the last request's user into the next), a root span continuing whatever trace context
came with it, one canonical log line when it ends, and a flush of the spans it produced.

The spans follow OpenTelemetry's conventions (`semconv`): an ingest request is an HTTP server
span, a step delivery a messaging `process {topic}` span with the subscription, the message id
and Pub/Sub's delivery attempt. The topic and the subscription are the ones the settings name
(PUBSUB_TOPIC, PUBSUB_SUBSCRIPTION; Terraform sets both), unless the caller knows better.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from messagedb_agent.notification import Notification
from messagedb_agent.observability import semconv
from messagedb_agent.observability.instrumented import StepTally, current_tally, tallying
from messagedb_agent.observability.logging import bind_context, get_logger, log_context
from messagedb_agent.observability.tracing import (
    Carrier,
    annotate,
    extract,
    flush,
    mark_failed,
    span,
)

if TYPE_CHECKING:
    from messagedb_agent.engine.step import StepResult
    from messagedb_agent.settings import Settings

log = get_logger("messagedb_agent.observability")

P = ParamSpec("P")
R = TypeVar("R")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@dataclass(frozen=True, slots=True)
class MessagingNames:
    """The topic step notifications are published to and the push subscription delivering them."""

    topic: str | None = None
    subscription: str | None = None


_names = MessagingNames()


def configure_messaging(settings: Settings | None) -> MessagingNames:
    """Name the delivery spans' topic and subscription after the settings; None forgets them."""
    global _names
    previous = _names
    _names = (
        MessagingNames(settings.pubsub.pubsub_topic, settings.pubsub.pubsub_subscription)
        if settings is not None
        else MessagingNames()
    )
    return previous


# -- ingest -----------------------------------------------------------------------------------


@dataclass(slots=True)
class RequestOutcome:
    status: int = 500


@contextmanager
def request_scope(
    method: str, path: str, headers: Carrier, *, scheme: str = "http"
) -> Iterator[RequestOutcome]:
    """One HTTP request: a server span under the caller's `traceparent`, one line at the end.

    `scheme` is the request's as this process received it; the original client's, which a
    front end that terminates TLS forwards in `Forwarded` or `X-Forwarded-Proto`, wins."""
    started = time.perf_counter()
    outcome = RequestOutcome()
    attributes = {
        semconv.HTTP_REQUEST_METHOD: method,
        semconv.URL_PATH: path,
        semconv.URL_SCHEME: semconv.original_scheme(
            headers.get("Forwarded"), headers.get("X-Forwarded-Proto"), scheme
        ),
    }
    try:
        with (
            log_context(),
            span(
                method, kind=SpanKind.SERVER, parent=extract(headers), attributes=attributes
            ) as current,
        ):
            try:
                yield outcome
            finally:
                current.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, outcome.status)
                if outcome.status >= 500:
                    mark_failed(current, str(outcome.status))
                log.info(
                    "request done",
                    method=method,
                    path=path,
                    status=outcome.status,
                    duration_ms=_elapsed_ms(started),
                )
    finally:
        flush()


def note_request(
    method: str, route: str, *, user: str | None = None, thread_id: str | None = None
) -> None:
    """What routing and authentication found out: the span's name, and who and which thread."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attribute(semconv.HTTP_ROUTE, route)
        current.update_name(f"{method} {route}")
    bind_context(user=user or None, thread_id=thread_id)


# -- step ---------------------------------------------------------------------------------------


@contextmanager
def delivery_scope(
    notification: Notification,
    attributes: Mapping[str, str],
    *,
    message_id: str | None = None,
    delivery_attempt: int | None = None,
    topic: str | None = None,
    subscription: str | None = None,
) -> Iterator[StepTally]:
    """One Pub/Sub push: a `process {topic}` consumer span continuing the publisher's trace.

    `topic` and `subscription` (short names or full resource names) default to the configured
    ones (`configure_messaging`)."""
    destination = semconv.short_name(topic) or _names.topic
    subscription_name = semconv.short_name(subscription) or _names.subscription
    try:
        with (
            log_context(
                stream_name=notification.stream_name,
                position=notification.position,
                message_id=message_id,
                delivery_attempt=delivery_attempt,
            ),
            span(
                semconv.messaging_span_name(semconv.OPERATION_PROCESS, destination),
                kind=SpanKind.CONSUMER,  # "process" in a push-based scenario
                parent=extract(attributes),
                attributes={
                    semconv.MESSAGING_SYSTEM: semconv.SYSTEM_GCP_PUBSUB,
                    semconv.MESSAGING_OPERATION_TYPE: semconv.OPERATION_PROCESS,
                    semconv.MESSAGING_OPERATION_NAME: semconv.OPERATION_PROCESS,
                    semconv.MESSAGING_DESTINATION_NAME: destination,
                    semconv.MESSAGING_SUBSCRIPTION_NAME: subscription_name,
                    semconv.MESSAGING_MESSAGE_ID: message_id,
                    semconv.MESSAGING_DELIVERY_ATTEMPT: delivery_attempt,
                    "agent.stream_name": notification.stream_name,
                    "agent.position": notification.position,
                },
            ),
            tallying(semconv.conversation_id(notification.stream_name)) as tally,
        ):
            yield tally
    finally:
        flush()


def step_done(
    result: StepResult, started: float, *, inline_retries: int = 0, redeliver: bool = False
) -> None:
    """The canonical line of a delivery: what happened, how much work, how long, what it cost."""
    fields: dict[str, object] = {
        "outcome": result.outcome.value,
        "kind": result.kind.value if result.kind else None,
        "step_id": result.step_id,
        "steps": result.steps,
        "turn_completed": result.turn_completed,
        "follow_ups": len(result.follow_ups),
        "inline_retries": inline_retries,
        "disposition": "redeliver" if redeliver else "ack",
        "duration_ms": _elapsed_ms(started),
    }
    tally = current_tally()
    if tally is not None:
        fields.update(tally.as_fields())
    annotate(
        {
            "agent.step.outcome": result.outcome.value,
            "agent.step.kind": result.kind.value if result.kind else None,
            "agent.step.count": result.steps,
        }
    )
    log.info("step done", **fields)


# -- relay --------------------------------------------------------------------------------------


def relay_entry(func: Callable[P, R]) -> Callable[P, R]:
    """A relay run: fresh context, a root span, spans flushed at the end."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with log_context(), span("relay", kind=SpanKind.INTERNAL):
                return func(*args, **kwargs)
        finally:
            flush()

    return wrapper
