"""The ingest function: HTTP in, `messagedb_agent.api` does the rest.

Settings are validated at import, so a misconfigured deployment fails to start; the API (and
with it the database pool and the publisher) is built on the first request.
"""

from __future__ import annotations

import functools

import flask
import functions_framework

from messagedb_agent.api import ApiSettings, IngestApi, create_api, default_publisher
from messagedb_agent.config import get_settings
from messagedb_agent.observability import configure

configure()  # JSON for Cloud Logging on Cloud Run, readable locally; spans per TRACE_EXPORTER
SETTINGS = get_settings()
API_SETTINGS = ApiSettings()


@functools.cache
def api() -> IngestApi:
    from messagedb_agent.postgres.connect import open_store  # psycopg: first request only

    return create_api(
        lambda: open_store(SETTINGS),
        lambda: default_publisher(SETTINGS),
        SETTINGS,
        api_settings=API_SETTINGS,
    )


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    return api().handle(request)
