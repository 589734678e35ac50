"""One user's threads do not exist for another: same 404 as a thread that never existed."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from tests.api.conftest import bearer, event_types, start

from messagedb_agent.store.client import MessageStore


def test_another_users_thread_answers_exactly_like_a_missing_one(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id = start(client, auth, "private")
    intruder = bearer(f"intruder-{uuid.uuid4().hex[:8]}")
    missing = str(uuid.uuid4())

    for path, method, body in (
        ("", "get", None),
        ("/events", "get", None),
        ("/messages", "post", {"message": "hi"}),
        ("/end", "post", None),
    ):
        theirs = client.open(
            f"/v1/threads/{thread_id}{path}", method=method, json=body, headers=intruder
        )
        nobodys = client.open(
            f"/v1/threads/{missing}{path}", method=method, json=body, headers=intruder
        )
        assert theirs.status_code == nobodys.status_code == 404, path
        assert theirs.get_json()["error"]["code"] == "thread_not_found"
        assert nobodys.get_json()["error"]["code"] == "thread_not_found"

    assert event_types(store, thread_id) == ["SessionStarted", "UserMessageAdded"]


def test_a_users_list_has_only_their_own_threads(client: FlaskClient, auth: dict[str, str]) -> None:
    mine = start(client, auth, "mine")
    other = bearer(f"other-{uuid.uuid4().hex[:8]}")
    theirs = start(client, other, "theirs")

    my_list = client.get("/v1/threads", headers=auth).get_json()["threads"]
    their_list = client.get("/v1/threads", headers=other).get_json()["threads"]

    assert [t["thread_id"] for t in my_list] == [mine]
    assert [t["thread_id"] for t in their_list] == [theirs]
