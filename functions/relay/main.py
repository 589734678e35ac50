"""The relay function: Cloud Scheduler calls it over HTTP; it re-announces what needs a step.

A run the database or Pub/Sub could not serve answers 503; the next run picks up from there.
"""

from __future__ import annotations

import flask
import functions_framework

from messagedb_agent.bounded_body import bound_request_bodies
from messagedb_agent.observability import configure
from messagedb_agent.runtime import Runtime
from messagedb_agent.settings import Settings

runtime = Runtime(Settings())
configure(runtime.settings)  # JSON for Cloud Logging on Cloud Run, readable locally; spans too
bound_request_bodies()  # a body that stops arriving is answered 408 after a few seconds
runtime.tune_collector()  # last: what the cold start built is never walked again


@functions_framework.http
def relay(request: flask.Request) -> flask.Response:
    outcome = runtime.relay()
    return flask.make_response(outcome.as_json(), 200 if outcome.ok else 503)
