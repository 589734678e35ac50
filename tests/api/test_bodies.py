"""Request bodies: only a JSON object, sent as JSON, is read; a POST may also have no body."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, event_types, start

from messagedb_agent.store.client import MessageStore

# Every POST that reads a body, and a body each accepts ("{id}" is a thread of the caller).
POSTS = [
    ("/v1/threads", '{"message": "hi"}'),
    ("/v1/threads/{id}/messages", '{"message": "hi"}'),
    ("/v1/threads/{id}/end", "{}"),
]


def error_code(response: Any) -> str:
    body = response.get_json()
    assert set(body) == {"error"}
    code: str = body["error"]["code"]
    return code


def thread_ids(client: FlaskClient, auth: dict[str, str]) -> list[str]:
    listed = client.get("/v1/threads", headers=auth).get_json()["threads"]
    return [item["thread_id"] for item in listed]


@pytest.mark.parametrize(("path", "_"), POSTS)
def test_a_null_body_is_invalid_request_on_every_post(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, path: str, _: str
) -> None:
    thread_id = start(client, auth)
    before = event_types(store, thread_id)

    response = client.post(
        path.replace("{id}", thread_id),
        data="null",
        headers={**auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    assert response.get_json()["error"]["message"] == "The request body must be a JSON object."
    assert thread_ids(client, auth) == [thread_id]  # no empty thread was opened
    assert event_types(store, thread_id) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/json; charset=latin-1",
        None,
    ],
)
@pytest.mark.parametrize(("path", "body"), POSTS)
def test_a_body_not_sent_as_json_is_unsupported_media_type(
    client: FlaskClient,
    auth: dict[str, str],
    store: MessageStore,
    path: str,
    body: str,
    content_type: str | None,
) -> None:
    thread_id = start(client, auth)
    before = event_types(store, thread_id)
    headers = dict(auth) if content_type is None else {**auth, "Content-Type": content_type}

    response = client.post(path.replace("{id}", thread_id), data=body, headers=headers)

    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"
    assert "Content-Type: application/json" in response.get_json()["error"]["message"]
    assert response.headers["Accept-Post"] == "application/json"
    assert thread_ids(client, auth) == [thread_id]
    assert event_types(store, thread_id) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8"],
)
def test_json_with_or_without_a_utf8_charset_is_read(
    client: FlaskClient, auth: dict[str, str], content_type: str
) -> None:
    response = client.post(
        "/v1/threads", data='{"message": "hi"}', headers={**auth, "Content-Type": content_type}
    )

    assert response.status_code == 201


def test_posts_without_a_body_need_no_content_type(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    created = client.post("/v1/threads", headers=auth)
    thread_id = created.get_json()["thread_id"]
    blank = client.post(f"/v1/threads/{thread_id}/end", data=" \n", headers=auth)
    ended = client.post(f"/v1/threads/{thread_id}/end", headers=auth)

    assert created.status_code == 201
    assert blank.status_code == ended.status_code == 202
    assert event_types(store, thread_id) == ["SessionStarted", "SessionTerminationRequested"]


def test_a_message_still_needs_a_body(client: FlaskClient, auth: dict[str, str]) -> None:
    thread_id = start(client, auth)

    response = client.post(f"/v1/threads/{thread_id}/messages", headers=auth)

    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_malformed_posts_spend_the_callers_rate_limit(
    make_api: MakeApi, auth: dict[str, str]
) -> None:
    """Decided: a refused body costs a token like any write, so garbage cannot be sent free."""
    client = make_api(rate_limit_per_minute=1, rate_limit_burst=3).flask_app().test_client()
    json_header = {**auth, "Content-Type": "application/json"}

    malformed = [
        client.post("/v1/threads", data="{not json", headers=json_header),
        client.post("/v1/threads", data="null", headers=json_header),
        client.post("/v1/threads", data='{"message": "hi"}', headers=auth),  # no Content-Type
    ]
    good = client.post("/v1/threads", json={"message": "hi"}, headers=auth)

    assert [r.status_code for r in malformed] == [400, 400, 415]
    assert good.status_code == 429
    assert error_code(good) == "rate_limited"
