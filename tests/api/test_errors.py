"""Every refusal has a stable code and a friendly sentence, and nothing internal leaks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import FailingPublisher, MakeApi, event_types, start

from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import StoreUnavailableError
from messagedb_agent.store.stream_name import thread_stream


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["message"].endswith((".", "?", "!"))
    return error


def test_bad_json_is_invalid_json(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/v1/threads", data="{not json", headers={**auth, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"message": 42}, ["message"]),
        ({"message": "hi", "colour": "blue"}, ["colour"]),
        ({"title": ["a"], "extra": 1}, ["extra", "title"]),
        ({"callback_url": "ftp://example.com/x"}, ["callback_url"]),
        ({"callback_url": "http://example.com/cb"}, ["callback_url"]),
        ({"title": "t" * 201}, ["title"]),
    ],
)
def test_wrong_types_and_unknown_fields_are_invalid_request_listing_the_fields(
    client: FlaskClient, auth: dict[str, str], body: dict[str, Any], fields: list[str]
) -> None:
    response = client.post("/v1/threads", json=body, headers=auth)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert sorted(d["field"] for d in error["details"]) == fields


@pytest.mark.parametrize("body", ["[]", '"hello"', "42", "null"])
def test_a_body_that_is_not_an_object_is_invalid_request(
    client: FlaskClient, auth: dict[str, str], body: str
) -> None:
    thread_id = start(client, auth)
    response = client.post(
        f"/v1/threads/{thread_id}/messages",
        data=body,
        headers={**auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize("message", ["", "   \n\t ", "x" * 5001, "nul\x00byte"])
def test_empty_blank_overlong_or_unstorable_messages_are_invalid_message(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, message: str
) -> None:
    thread_id = start(client, auth)

    added = client.post(
        f"/v1/threads/{thread_id}/messages", json={"message": message}, headers=auth
    )
    started = client.post("/v1/threads", json={"message": message}, headers=auth)

    for response in (added, started):
        assert response.status_code == 422
        assert error_of(response)["code"] == "invalid_message"
    assert event_types(store, thread_id).count("UserMessageAdded") == 1


def test_the_message_limit_comes_from_settings(
    make_api: MakeApi, auth: dict[str, str], settings: Settings
) -> None:
    client = make_api(core=settings.replace(max_message_length=10)).flask_app()

    response = client.test_client().post("/v1/threads", json={"message": "x" * 11}, headers=auth)

    assert response.status_code == 422
    assert "10" in error_of(response)["message"]


def test_a_missing_message_is_invalid_request(client: FlaskClient, auth: dict[str, str]) -> None:
    thread_id = start(client, auth)

    response = client.post(f"/v1/threads/{thread_id}/messages", headers=auth)

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize(
    "query",
    ["wait=abc", "wait=0", "wait=-1", "wait=nan", "wait=inf"],
)
def test_bad_wait_values_are_invalid_request(
    client: FlaskClient, auth: dict[str, str], query: str
) -> None:
    thread_id = start(client, auth)

    response = client.post(
        f"/v1/threads/{thread_id}/messages?{query}", json={"message": "hi"}, headers=auth
    )

    assert response.status_code == 400
    assert error_of(response)["details"][0]["field"] == "wait"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/threads?limit=0",
        "/v1/threads?limit=many",
        "/v1/threads?cursor=%%%",
        "/v1/threads?cursor=bm90LWEtY3Vyc29y",
        "/v1/threads/{id}/events?after=-2",
        "/v1/threads/{id}/events?limit=100000",
        "/v1/threads/{id}/events?after=99999999999999999999",
    ],
)
def test_bad_query_parameters_are_invalid_request(
    client: FlaskClient, auth: dict[str, str], path: str
) -> None:
    thread_id = start(client, auth)

    response = client.get(path.replace("{id}", thread_id), headers=auth)

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize(
    "thread",
    ["not-a-uuid", str(uuid.uuid4()), "thread-abc", "..", "x" * 300, str(uuid.uuid4()).upper()],
)
def test_bad_or_unknown_thread_ids_are_thread_not_found(
    client: FlaskClient, auth: dict[str, str], thread: str
) -> None:
    response = client.get(f"/v1/threads/{thread}", headers=auth)

    assert response.status_code == 404
    assert error_of(response)["code"] == "thread_not_found"


def test_a_message_to_an_ended_thread_is_thread_closed(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id = start(client, auth)
    store.write_message(
        None,
        thread_stream(thread_id),
        "SessionCompleted",
        {"completion_reason": "terminated", "message": "This conversation has been closed."},
    )

    response = client.post(
        f"/v1/threads/{thread_id}/messages", json={"message": "hello?"}, headers=auth
    )
    ended = client.post(f"/v1/threads/{thread_id}/end", headers=auth)

    assert response.status_code == 409
    assert error_of(response)["code"] == "thread_closed"
    assert ended.status_code == 200
    assert event_types(store, thread_id)[-1] == "SessionCompleted"


@pytest.mark.parametrize("multitask", ["enqueue", "interrupt"])
def test_a_message_after_the_closing_messages_delivery_is_still_thread_closed(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, multitask: str
) -> None:
    """A thread with a reply address has its closing message delivered after it ended: the
    thread is no less over once that delivery is its newest event."""
    thread_id = start(client, auth)
    stream = thread_stream(thread_id)
    store.write_message(
        None,
        stream,
        "SessionCompleted",
        {"completion_reason": "terminated", "message": "This conversation has been closed."},
    )
    ended_at = store.stream_version(stream)
    store.write_message(
        None,
        stream,
        "ReplyDeliveryRequested",
        {"step_id": "d1", "reply_position": ended_at, "callback_url": "https://x.example/h",
         "attempt": 1, "lease_expires_at": "2026-01-01T00:00:00+00:00"},
    )  # fmt: skip
    store.write_message(
        None, stream, "ReplyDelivered", {"step_id": "d1", "attempt": 1, "status_code": 200}
    )

    response = client.post(
        f"/v1/threads/{thread_id}/messages?multitask={multitask}",
        json={"message": "hello?"},
        headers=auth,
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "thread_closed"
    assert event_types(store, thread_id)[-1] == "ReplyDelivered"


def test_an_unknown_route_is_not_found(client: FlaskClient, auth: dict[str, str]) -> None:
    for path in ("/v2/threads", "/v1/threads/x/y/z", "/favicon.ico", "/ui/nothing.js"):
        response = client.get(path, headers=auth)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"


def test_a_wrong_method_is_405_with_allow(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.delete("/v1/threads", headers=auth)

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_an_oversized_body_is_payload_too_large(make_api: MakeApi, auth: dict[str, str]) -> None:
    client = make_api(max_body_bytes=1024).flask_app().test_client()

    response = client.post("/v1/threads", json={"message": "x" * 2000}, headers=auth)

    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


class BrokenStore:
    """A store whose reads fail in a way no handler expects."""

    def __init__(self, real: MessageStore) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        if name in ("get_stream_messages", "read_stream"):

            def explode(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("secret internals: /srv/app/db.py line 42")

            return explode
        return getattr(self.real, name)


def test_an_unexpected_failure_is_internal_error_without_details(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_api().flask_app().test_client()
    thread_id = start(good, auth)
    broken = make_api(store_factory=lambda: BrokenStore(store)).flask_app().test_client()

    response = broken.get(f"/v1/threads/{thread_id}", headers=auth)

    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert "secret internals" in caplog.text  # the traceback stays in the server's log


def unreachable() -> MessageStore:
    raise StoreUnavailableError("cannot reach PostgreSQL at postgresql://db:5432/x")


def test_an_unreachable_database_is_unavailable(make_api: MakeApi, auth: dict[str, str]) -> None:
    client = make_api(store_factory=unreachable).flask_app().test_client()

    response = client.get("/v1/threads", headers=auth)
    health = client.get("/healthz")

    assert response.status_code == 503
    assert error_of(response) == {
        "code": "unavailable",
        "message": "I'm having trouble reaching the database; please try again in a moment.",
    }
    assert "Retry-After" in response.headers
    assert health.status_code == 503
    body = health.get_json()
    assert (body["status"], body["message_store_version"], body["server_version"]) == (
        "unavailable",
        None,
        None,
    )
    assert "cannot reach PostgreSQL" in body["unavailable"]["database"]


def test_a_failed_publish_does_not_fail_the_request(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = FailingPublisher()
    client = make_api(publisher).flask_app().test_client()

    response = client.post("/v1/threads", json={"message": "still here"}, headers=auth)

    assert response.status_code == 201
    assert publisher.attempts == 1
    assert event_types(store, response.get_json()["thread_id"])[-1] == "UserMessageAdded"
    assert "publish failed" in caplog.text
