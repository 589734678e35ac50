"""The ingest function: HTTP in, the ingest API (`messagedb_agent.api`) answers.

Settings are validated at import, so a misconfigured deployment fails to start; the API (and
with it the database pool and the publisher) is built on the first request.
"""

from __future__ import annotations

import flask
import functions_framework

from messagedb_agent.bounded_body import bound_request_bodies
from messagedb_agent.observability import configure
from messagedb_agent.runtime import Runtime
from messagedb_agent.settings import Settings

runtime = Runtime(Settings().serving_api())
configure(runtime.settings)  # JSON for Cloud Logging on Cloud Run, readable locally; spans too
bound_request_bodies()  # a body that stops arriving is answered 408 after a few seconds
runtime.tune_collector()  # last: what the cold start built is never walked again


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    return runtime.ingest_api.handle(request)
