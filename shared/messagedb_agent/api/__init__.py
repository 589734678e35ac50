"""The ingest HTTP API: the versioned JSON API chat front-ends call.

    POST /v1/threads                       start a thread (optionally with its first message)
    GET  /v1/threads                       the caller's threads, newest activity first
    POST /v1/threads/{id}/messages[?wait=] send a message; with `wait`, answer with the reply
    GET  /v1/threads/{id}                  transcript, status, tool calls, usage
    GET  /v1/threads/{id}/events           raw events after a position
    POST /v1/threads/{id}/end              end the thread (a POST, not a DELETE: the thread
                                           and its history stay; only new messages stop)
    GET  /healthz, GET /openapi.json       unauthenticated

`create_api` builds it from the settings and factories (store, publisher), so the ingest
function (through `messagedb_agent.runtime`), a local Flask app and the tests share one code
path: `IngestApi.handle(flask.Request) -> flask.Response`.
"""

from messagedb_agent.api.app import IngestApi, create_api
from messagedb_agent.api.auth import issue_dev_token
from messagedb_agent.settings.serving import DEV_AUTH_SECRET

__all__ = [
    "DEV_AUTH_SECRET",
    "IngestApi",
    "create_api",
    "issue_dev_token",
]
