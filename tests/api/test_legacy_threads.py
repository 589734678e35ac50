"""A thread written before sharding (`thread-<uuid>`) works through the whole API, next to a
sharded one: read, listed, answered by the engine, paged, ended."""

from __future__ import annotations

from flask.testing import FlaskClient
from tests.api.test_user_stories import chat, stepping
from tests.threads.legacy import write_legacy_thread

from messagedb_agent.store.client import MessageStore

__all__ = ["chat", "stepping"]  # the user stories' fixtures: the offline model, stepping in-process


def test_a_legacy_thread_is_read_answered_listed_and_ended_through_the_api(
    chat: FlaskClient, auth: dict[str, str], user: str, store: MessageStore
) -> None:
    thread_id, legacy = write_legacy_thread(store, user, "echo from before")
    sharded = chat.post("/v1/threads?wait=10", json={"message": "echo from now"}, headers=auth)

    answered = chat.post(
        f"/v1/threads/{thread_id}/messages?wait=10",
        json={"message": "echo still here"},
        headers=auth,
    )
    detail = chat.get(f"/v1/threads/{thread_id}?limit=2&order=newest", headers=auth)
    listed = chat.get("/v1/threads", headers=auth)
    ended = chat.post(f"/v1/threads/{thread_id}/end", headers=auth)

    assert sharded.status_code == 201
    assert sharded.get_json()["reply"]["text"].endswith("from now")
    assert answered.status_code == 200
    assert answered.get_json()["reply"]["text"].endswith("still here")
    assert [m["text"].split("\n")[-1] for m in detail.get_json()["messages"]] == [
        "still here",
        "echo still here",
    ]
    ids = [t["thread_id"] for t in listed.get_json()["threads"]]
    assert sorted(ids) == sorted([thread_id, sharded.get_json()["thread_id"]])
    assert ended.status_code == 202
    types = [m.type for m in store.read_stream(legacy)]
    assert types[:2] == ["SessionStarted", "UserMessageAdded"]
    assert "LLMResponseReceived" in types
    assert "SessionTerminationRequested" in types


def test_another_user_cannot_reach_a_legacy_thread(
    chat: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id, _ = write_legacy_thread(store, "someone-else", "private")

    assert chat.get(f"/v1/threads/{thread_id}", headers=auth).status_code == 404
    posted = chat.post(f"/v1/threads/{thread_id}/messages", json={"message": "hi"}, headers=auth)
    assert posted.status_code == 404
