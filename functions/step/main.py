"""The step function: Pub/Sub-triggered; one delivery, one step (see `pubsub.step_handler`).

Returning acknowledges the message; an exception asks Pub/Sub to redeliver it. A request that
functions-framework cannot turn into a CloudEvent fails before `step` runs; the error handler
acknowledges it, since the same bytes would fail on every redelivery (functions-framework's
documented `errorhandler`, registered on the app this module is loaded into).
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.wrappers import Response

from messagedb_agent.bounded_body import bound_request_bodies
from messagedb_agent.observability import configure
from messagedb_agent.pubsub.step_handler import answer_framework_error, handed_over
from messagedb_agent.runtime import Runtime
from messagedb_agent.settings import Settings

runtime = Runtime(Settings())
runtime.import_tool_modules()  # a broken TOOL_MODULES module stops the cold start, named
configure(runtime.settings)  # JSON for Cloud Logging on Cloud Run, readable locally; spans too
bound_request_bodies()  # a body that stops arriving is answered 408 after a few seconds
runtime.tune_collector()  # last: what the cold start built is never walked again


@functions_framework.errorhandler(Exception)
def unreadable(error: Exception) -> Response:
    return answer_framework_error(flask.request, error)


@functions_framework.cloud_event
def step(cloud_event: CloudEvent) -> None:
    attempt = handed_over(flask.request)  # the push's deliveryAttempt, lost in the conversion
    runtime.step_delivery.handle_event(cloud_event, delivery_attempt=attempt)
