"""The relay function: Cloud Scheduler calls it over HTTP; it re-announces what needs a step."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import flask
import functions_framework

from messagedb_agent.observability import configure
from messagedb_agent.pubsub.instance import FunctionInstance
from messagedb_agent.pubsub.step_handler import TRANSIENT
from messagedb_agent.relay.run import relay_once

log = logging.getLogger(__name__)
configure()  # JSON for Cloud Logging on Cloud Run, readable locally; spans per TRACE_EXPORTER
instance = FunctionInstance()


@functions_framework.http
def relay(request: flask.Request) -> flask.Response:
    try:
        report = relay_once(instance.store, instance.publisher, datetime.now(UTC))
    except TRANSIENT as exc:
        log.warning("relay run failed; the next run picks up from the same position: %s", exc)
        return flask.make_response({"error": "unavailable", "detail": str(exc)}, 503)
    return flask.make_response(report.as_json(), 200)
