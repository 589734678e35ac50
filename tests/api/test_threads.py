"""The happy path of every thread route."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask.testing import FlaskClient
from tests.api.conftest import event_types, published_positions, start
from tests.publishers import RecordingPublisher

from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream


def test_starting_a_thread_with_a_message_writes_it_and_publishes_its_position(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, publisher: RecordingPublisher
) -> None:
    response = client.post(
        "/v1/threads",
        json={"message": "  plan my week  ", "title": "Week", "callback_url": "https://x.test/cb"},
        headers=auth,
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "active"
    assert body["position"] == 1
    thread_id = body["thread_id"]
    messages = store.read_stream(thread_stream(thread_id))
    assert [m.type for m in messages] == ["SessionStarted", "UserMessageAdded"]
    assert messages[0].data["title"] == "Week"
    assert messages[0].data["callback_url"] == "https://x.test/cb"
    assert messages[1].data["message"] == "plan my week"
    assert published_positions(publisher) == [(thread_stream(thread_id), 1)]


def test_starting_a_thread_without_a_message_opens_it_empty(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    response = client.post("/v1/threads", headers=auth)

    assert response.status_code == 201
    assert response.get_json()["position"] == 0
    assert event_types(store, response.get_json()["thread_id"]) == ["SessionStarted"]


def test_adding_a_message_appends_it_and_publishes_its_position(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, publisher: RecordingPublisher
) -> None:
    thread_id = start(client, auth)

    response = client.post(
        f"/v1/threads/{thread_id}/messages", json={"message": "and then?"}, headers=auth
    )

    assert response.status_code == 202
    assert response.get_json() == {"thread_id": thread_id, "position": 2}
    assert store.read_stream(thread_stream(thread_id))[2].data["message"] == "and then?"
    assert published_positions(publisher)[-1] == (thread_stream(thread_id), 2)


def test_a_thread_reads_back_as_a_transcript_with_status_and_counts(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    thread_id = start(client, auth, "first")
    client.post(f"/v1/threads/{thread_id}/messages", json={"message": "second"}, headers=auth)

    response = client.get(f"/v1/threads/{thread_id}", headers=auth)

    assert response.status_code == 200
    detail = response.get_json()
    assert detail["thread_id"] == thread_id
    assert detail["status"] == "active"
    assert detail["title"] == "first"
    assert [(m["role"], m["text"], m["position"]) for m in detail["messages"]] == [
        ("user", "first", 1),
        ("user", "second", 2),
    ]
    times = [m["time"] for m in detail["messages"]] + [detail["created_at"]]
    assert all(datetime.fromisoformat(t).utcoffset() == timedelta(0) for t in times)
    assert detail["counts"]["user"] == 2
    assert detail["token_usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cached_input_tokens": 0,
        "thinking_tokens": 0,
    }
    assert detail["version"] == 2


def test_events_page_after_a_position(client: FlaskClient, auth: dict[str, str]) -> None:
    thread_id = start(client, auth, "one")
    for text in ("two", "three"):
        client.post(f"/v1/threads/{thread_id}/messages", json={"message": text}, headers=auth)

    first = client.get(f"/v1/threads/{thread_id}/events?after=0&limit=2", headers=auth)
    rest = client.get(
        f"/v1/threads/{thread_id}/events?after={first.get_json()['next_after']}", headers=auth
    )

    page = first.get_json()
    assert [(e["type"], e["position"]) for e in page["events"]] == [
        ("UserMessageAdded", 1),
        ("UserMessageAdded", 2),
    ]
    assert page["events"][0]["data"]["message"] == "one"
    assert page["next_after"] == 2
    assert [e["data"]["message"] for e in rest.get_json()["events"]] == ["three"]
    assert rest.get_json()["next_after"] is None


def test_event_metadata_keeps_only_what_clients_need(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    thread_id = start(client, auth)

    events = client.get(f"/v1/threads/{thread_id}/events", headers=auth).get_json()["events"]

    message = events[1]["metadata"]
    assert set(message) <= {"causation_position", "turn_id", "step_id", "schema_version"}
    assert message["schema_version"] == 1
    assert "turn_id" in message
    assert "correlationStreamName" not in message
    assert "userId" not in message


def test_listing_pages_through_the_callers_threads_newest_activity_first(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    older, middle, newest = (start(client, auth, text) for text in ("a", "b", "c"))
    client.post(f"/v1/threads/{older}/messages", json={"message": "bump"}, headers=auth)

    first = client.get("/v1/threads?limit=2", headers=auth).get_json()
    second = client.get(f"/v1/threads?limit=2&cursor={first['next_cursor']}", headers=auth)

    assert [t["thread_id"] for t in first["threads"]] == [older, newest]
    assert first["next_cursor"]
    assert [t["thread_id"] for t in second.get_json()["threads"]] == [middle]
    assert second.get_json()["next_cursor"] is None
    assert first["threads"][0]["title"] == "a"


def test_ending_a_thread_requests_termination_and_publishes(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, publisher: RecordingPublisher
) -> None:
    thread_id = start(client, auth)

    response = client.post(f"/v1/threads/{thread_id}/end", headers=auth)

    assert response.status_code == 202
    assert response.get_json() == {"thread_id": thread_id, "position": 2}
    assert event_types(store, thread_id)[-1] == "SessionTerminationRequested"
    assert published_positions(publisher)[-1] == (thread_stream(thread_id), 2)


def test_health_reports_the_message_store(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["message_store_version"]
