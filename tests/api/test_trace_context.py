"""The caller's trace continues into the events: one user turn, one trace."""

from __future__ import annotations

from flask.testing import FlaskClient

from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_the_user_message_carries_the_callers_trace_id(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    response = client.post(
        "/v1/threads", json={"message": "hello"}, headers={**auth, "traceparent": TRACEPARENT}
    )
    assert response.status_code == 201
    events = read_thread(store, names.thread_stream(response.json["thread_id"]))  # type: ignore[index]
    carried = [e.metadata.traceparent for e in events]
    assert all(value is not None and value.split("-")[1] == TRACE_ID for value in carried)
