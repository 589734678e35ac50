"""Query strings: unknown parameters are refused, and a thread's messages can be paged."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import start


def thread_with_messages(client: FlaskClient, auth: dict[str, str], count: int) -> str:
    thread_id = start(client, auth, "m0")
    for n in range(1, count):
        response = client.post(
            f"/v1/threads/{thread_id}/messages", json={"message": f"m{n}"}, headers=auth
        )
        assert response.status_code == 202
    return thread_id


def texts(body: dict[str, Any]) -> list[str]:
    return [m["text"] for m in body["messages"]]


@pytest.mark.parametrize(
    ("path", "accepted"),
    [
        ("/v1/threads?limit=2&offset=1", "`limit`, `cursor`"),
        ("/v1/threads/{id}?offset=1", "`limit`, `cursor`, `order`"),
        ("/v1/threads/{id}/events?offset=1", "`after`, `limit`"),
    ],
)
def test_an_unknown_query_parameter_is_refused_by_name(
    client: FlaskClient, auth: dict[str, str], path: str, accepted: str
) -> None:
    response = client.get(path.replace("{id}", start(client, auth)), headers=auth)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert "`offset`" in error["message"]
    assert accepted in error["message"]
    assert error["details"] == [{"field": "offset", "message": "unknown query parameter"}]


@pytest.mark.parametrize(
    ("path", "accepted"),
    [
        ("/v1/threads?wiat=5", "`wait`"),
        ("/v1/threads/{id}/messages?wiat=5", "`wait`"),
        ("/v1/threads/{id}/end?wiat=5", "it takes no query parameters"),
    ],
)
def test_a_write_with_an_unknown_query_parameter_is_refused_and_appends_nothing(
    client: FlaskClient, auth: dict[str, str], path: str, accepted: str
) -> None:
    thread_id = start(client, auth)
    before = client.get(f"/v1/threads/{thread_id}/events", headers=auth).get_json()

    response = client.post(path.replace("{id}", thread_id), json={"message": "hello"}, headers=auth)

    assert response.status_code == 400
    assert "`wiat`" in response.get_json()["error"]["message"]
    assert accepted in response.get_json()["error"]["message"]
    after = client.get(f"/v1/threads/{thread_id}/events", headers=auth).get_json()
    assert after == before


@pytest.mark.parametrize("path", ["/healthz?probe=1", "/openapi.json?v=2"])
def test_probes_and_the_document_ignore_query_strings_monitors_and_caches_add(
    client: FlaskClient, path: str
) -> None:
    assert client.get(path).status_code in (200, 503)


def test_the_default_thread_answer_has_every_message_oldest_first(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    thread_id = thread_with_messages(client, auth, 3)

    body = client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()

    assert texts(body) == ["m0", "m1", "m2"]
    assert body["next_cursor"] is None


def test_messages_page_oldest_first_with_a_cursor(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    thread_id = thread_with_messages(client, auth, 5)
    seen: list[str] = []
    url = f"/v1/threads/{thread_id}?limit=2"
    pages = 0
    while True:
        body = client.get(url, headers=auth).get_json()
        pages += 1
        seen += texts(body)
        if body["next_cursor"] is None:
            break
        url = f"/v1/threads/{thread_id}?limit=2&cursor={body['next_cursor']}"

    assert seen == ["m0", "m1", "m2", "m3", "m4"]
    assert pages == 3


def test_messages_page_newest_first(client: FlaskClient, auth: dict[str, str]) -> None:
    thread_id = thread_with_messages(client, auth, 3)

    first = client.get(f"/v1/threads/{thread_id}?limit=2&order=newest", headers=auth).get_json()
    cursor = first["next_cursor"]
    second = client.get(
        f"/v1/threads/{thread_id}?limit=2&order=newest&cursor={cursor}", headers=auth
    ).get_json()

    assert texts(first) == ["m2", "m1"]
    assert texts(second) == ["m0"]
    assert second["next_cursor"] is None
    assert first["version"] == second["version"]


def test_a_full_last_page_has_no_cursor(client: FlaskClient, auth: dict[str, str]) -> None:
    thread_id = thread_with_messages(client, auth, 2)

    body = client.get(f"/v1/threads/{thread_id}?limit=2", headers=auth).get_json()

    assert texts(body) == ["m0", "m1"]
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        "cursor=%25%25%25",
        "cursor=bm90LWEtY3Vyc29y",
        "cursor=bzotMQ",  # o:-1
        "cursor=bzo5OTk5OTk5OTk5OTk5OTk5",  # beyond any position
        "limit=0",
        "limit=abc",
        "order=sideways",
    ],
)
def test_bad_paging_parameters_are_a_400(
    client: FlaskClient, auth: dict[str, str], query: str
) -> None:
    thread_id = start(client, auth)

    response = client.get(f"/v1/threads/{thread_id}?{query}", headers=auth)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_a_cursor_is_refused_with_the_other_order(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    thread_id = thread_with_messages(client, auth, 3)
    cursor = client.get(f"/v1/threads/{thread_id}?limit=1", headers=auth).get_json()["next_cursor"]

    response = client.get(f"/v1/threads/{thread_id}?order=newest&cursor={cursor}", headers=auth)

    assert response.status_code == 400
    assert response.get_json()["error"]["details"][0]["field"] == "cursor"
