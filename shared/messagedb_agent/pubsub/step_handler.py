"""One Pub/Sub delivery of a step notification: step, publish the follow-ups, ack or redeliver.

Returning acknowledges the message; raising makes Pub/Sub redeliver it (with the
subscription's retry backoff, and to the dead-letter topic after the last attempt). So:
- every final outcome (executed, stale, lost claim, in flight, waiting, done, empty) returns;
  the follow-ups are published first, so a returned delivery never loses the chain;
- a backoff that ends within a few seconds is slept through here, then the step runs again;
  a longer one raises `RedeliverLater`, handing the wait to Pub/Sub's retry policy;
- transient infrastructure failures (the database, Pub/Sub itself) raise, to be retried;
- a malformed message, or any error retrying would not fix, is logged and acknowledged: a
  message that can never succeed must not be redelivered forever.

Pub/Sub counts any answer but 102, 200, 201, 202 and 204 as a failed push, a 400 included.
functions-framework answers 400 or 500 itself when it cannot turn a request into a CloudEvent
(a JSON array makes its conversion raise TypeError, a non-JSON body is a 400, a push without
`message.messageId` a 400), before the function runs. `handed_over` and `answer_framework_error`
are the step function's side of that boundary: whatever failed before the hand-over failed on
the request's bytes alone, so it fails the same way on every redelivery and is acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import flask
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from messagedb_agent.engine.step import Engine, StepResult
from messagedb_agent.notification import (
    InvalidNotification,
    Notification,
    NotificationPublisher,
)
from messagedb_agent.observability.entry_points import delivery_scope, step_done
from messagedb_agent.projections.next_step import StepKind
from messagedb_agent.pubsub.envelope import (
    CloudEventLike,
    decode_cloud_event,
    push_delivery_attempt,
)
from messagedb_agent.pubsub.publisher import PublishError
from messagedb_agent.store.errors import StoreUnavailableError

log = logging.getLogger(__name__)

MAX_INLINE_WAIT_SECONDS = 5.0
MAX_INLINE_RETRIES = 3
TRANSIENT: tuple[type[BaseException], ...] = (
    StoreUnavailableError,
    PublishError,
    ConnectionError,
    TimeoutError,
)


class RedeliverLater(Exception):
    """The step backs off until `not_before`; Pub/Sub's retry policy brings it back."""

    def __init__(self, stream_name: str, not_before: datetime | None) -> None:
        self.stream_name = stream_name
        self.not_before = not_before
        when = not_before.isoformat() if not_before else "later"
        super().__init__(f"{stream_name} backs off until {when}; redeliver then")


_REDELIVER: tuple[type[BaseException], ...] = (RedeliverLater, *TRANSIENT)


class Disposition(StrEnum):
    ACK = "ack"
    STEP_AGAIN = "step_again"  # sleep through a short backoff, then step the same position
    REDELIVER = "redeliver"


def disposition(
    result: StepResult, now: datetime, max_inline_wait: float = MAX_INLINE_WAIT_SECONDS
) -> tuple[Disposition, float]:
    """What to do with a delivery after its step, and how long to wait first."""
    if result.outcome is not StepKind.RETRY_LATER:
        return Disposition.ACK, 0.0
    delay = max(0.0, (result.not_before - now).total_seconds()) if result.not_before else 0.0
    if delay <= max_inline_wait:
        return Disposition.STEP_AGAIN, delay
    return Disposition.REDELIVER, delay


@dataclass(frozen=True, slots=True)
class StepDelivery:
    """The engine and the publisher a step function instance builds once."""

    engine: Engine
    publisher: NotificationPublisher
    max_inline_wait: float = MAX_INLINE_WAIT_SECONDS
    # steps one delivery may run in a row while it holds the thread (one commit each), and
    # the time after which it stops chaining and hands the rest to a new delivery
    max_steps: int = 25
    budget_seconds: float = 60.0
    max_inline_retries: int = MAX_INLINE_RETRIES
    sleep: Callable[[float], None] = time.sleep

    def handle_event(
        self, event: CloudEventLike, *, delivery_attempt: int | None = None
    ) -> StepResult | None:
        """Handle one CloudEvent; None when it was malformed (and acknowledged).

        `delivery_attempt` is the push envelope's own, for when the event lost it on the way
        (functions-framework's conversion of a raw push does); the event's wins when it has one.
        """
        try:
            delivery = decode_cloud_event(event)
        except InvalidNotification as exc:
            log.warning("dropping a malformed step notification (acknowledged): %s", exc)
            return None
        if delivery.delivery_attempt is None and delivery_attempt is not None:
            delivery = replace(delivery, delivery_attempt=delivery_attempt)
        with delivery_scope(  # the publisher's trace continues; context bound for every line
            delivery.notification,
            delivery.attributes,
            message_id=delivery.message_id,
            delivery_attempt=delivery.delivery_attempt,
        ):
            try:
                return self.handle(delivery.notification)
            except _REDELIVER:
                raise
            except Exception:
                log.exception(
                    "step of %s@%s failed in a way retrying will not fix; acknowledged",
                    delivery.notification.stream_name,
                    delivery.notification.position,
                )
                return None

    def handle(self, notification: Notification) -> StepResult:
        """Step until the result is final for this delivery; raise to be redelivered."""
        started = time.perf_counter()
        retries = 0
        while True:
            result = self.engine.advance(
                notification, max_steps=self.max_steps, budget_seconds=self.budget_seconds
            )
            if result.follow_ups:
                self.publisher.publish(result.follow_ups)
            action, delay = disposition(result, self.engine.clock(), self.max_inline_wait)
            if action is Disposition.ACK:
                step_done(result, started, inline_retries=retries)
                return result
            if action is Disposition.REDELIVER or retries >= self.max_inline_retries:
                step_done(result, started, inline_retries=retries, redeliver=True)
                raise RedeliverLater(result.stream_name, result.not_before)
            retries += 1
            self.sleep(delay)


# -- the functions-framework boundary ---------------------------------------------------------

_HANDED_OVER = "messagedb_agent.step.handed_over"
_BODY_SHOWN = 120  # bytes of an unreadable body quoted in the log line


def handed_over(request: flask.Request) -> int | None:
    """Note that functions-framework made an event of this request; the push's deliveryAttempt.

    Called first thing in the step function: from here on an exception is the handler asking
    for redelivery, not a request that could never be read.
    """
    request.environ[_HANDED_OVER] = True
    return push_delivery_attempt(request.get_data(cache=True))


def answer_framework_error(request: flask.Request, error: Exception) -> Response:
    """The step function's error handler (`functions_framework.errorhandler(Exception)`).

    Before the hand-over, a POST that functions-framework could not turn into an event is
    acknowledged with a 200 and a warning naming why; anything else answers as it would have
    without this handler: an HTTP error as itself (a GET is still a 405), an exception from the
    step as a 500 that Pub/Sub redelivers.
    """
    if request.environ.get(_HANDED_OVER) or request.method != "POST":
        if isinstance(error, HTTPException):
            return error.get_response()
        raise error  # Flask logs it and functions-framework answers 500, as before
    try:
        body = request.get_data(cache=True)
    except Exception:  # the body itself could not be read (the caller went away)
        body = b""
    shown = body[:_BODY_SHOWN] + (b"..." if len(body) > _BODY_SHOWN else b"")
    reason = (error.description if isinstance(error, HTTPException) else str(error)) or ""
    log.warning(
        "acknowledged a push that can never become a step: functions-framework could not "
        "read it as a Pub/Sub message (%s: %s); content type %r, %d bytes: %r",
        type(error).__name__,
        reason.splitlines()[0][:200] if reason else "",
        request.content_type,
        len(body),
        shown,
    )
    return flask.Response("acknowledged: not a Pub/Sub message this function can process\n", 200)
