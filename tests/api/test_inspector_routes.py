"""What the thread inspector reads: the next-step decision at a position (the replay
projection), a fork from a position, the user's cost, and the page itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer, start
from tests.api.test_user_stories import Stepping

from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore


@pytest.fixture
def chat(make_api: MakeApi, store: MessageStore, settings: Settings) -> Iterator[FlaskClient]:
    stepping = Stepping(build_engine(settings, store, OfflineModel()))
    with make_api(stepping).flask_app().test_client() as test_client:
        yield test_client
    stepping.join()


def answered(chat: FlaskClient, auth: dict[str, str]) -> tuple[str, list[dict[str, object]]]:
    thread = start(chat, auth, None)
    said = chat.post(
        f"/v1/threads/{thread}/messages?wait=20", json={"message": "what is 6*7?"}, headers=auth
    )
    assert said.status_code == 200, said.get_json()
    events = chat.get(f"/v1/threads/{thread}/events", headers=auth).get_json()["events"]
    return thread, events


def test_the_decision_at_each_position_replays_the_step_protocol(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread, events = answered(chat, auth)
    at = {e["type"]: e["position"] for e in events}

    def decided(position: int) -> dict[str, object]:
        response = chat.get(f"/v1/threads/{thread}/decision?at={position}", headers=auth)
        assert response.status_code == 200, response.get_json()
        body: dict[str, object] = response.get_json()
        return body

    assert decided(at["UserMessageAdded"])["kind"] == "llm_call"
    assert decided(at["LLMCallRequested"])["kind"] == "in_flight"
    assert decided(at["ToolExecutionRequested"])["kind"] == "in_flight"
    head = chat.get(f"/v1/threads/{thread}/decision", headers=auth).get_json()
    assert (head["kind"], head["position"]) == ("waiting", events[-1]["position"])
    missing = chat.get(f"/v1/threads/{thread}/decision?at=9999", headers=auth)
    assert missing.status_code == 400


def test_a_fork_at_a_position_is_a_new_thread_with_the_history_up_to_it(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread, _ = answered(chat, auth)
    forked = chat.post(f"/v1/threads/{thread}/fork", json={"at": 1}, headers=auth)

    assert forked.status_code == 201, forked.get_json()
    body = forked.get_json()
    assert (body["forked_from"], body["forked_at_position"]) == (thread, 1)
    copied = chat.get(f"/v1/threads/{body['thread_id']}/events", headers=auth).get_json()
    assert [e["type"] for e in copied["events"][:2]] == ["SessionStarted", "UserMessageAdded"]
    stranger = bearer("someone-else")
    assert (
        chat.post(f"/v1/threads/{thread}/fork", json={"at": 1}, headers=stranger).status_code == 404
    )
    beyond = chat.post(f"/v1/threads/{thread}/fork", json={"at": 9999}, headers=auth)
    assert beyond.status_code == 422


def test_a_fork_finds_its_source_thread_once(
    chat: FlaskClient, auth: dict[str, str], finds: list[str]
) -> None:
    thread, _ = answered(chat, auth)
    finds.clear()

    forked = chat.post(f"/v1/threads/{thread}/fork", json={"at": 1}, headers=auth)

    assert forked.status_code == 201, forked.get_json()
    assert finds == [thread]


def test_me_sums_the_cost_of_the_users_threads(chat: FlaskClient, auth: dict[str, str]) -> None:
    answered(chat, auth)
    answered(chat, auth)
    me = chat.get("/v1/me", headers=auth).get_json()
    assert me["threads"] == 2
    assert {m["model"] for m in me["cost"]["by_model"]} == {"offline-stand-in"}
    assert sum(m["calls"] for m in me["cost"]["by_model"]) >= 4


def test_the_page_is_served_with_a_strict_content_security_policy(chat: FlaskClient) -> None:
    assert chat.get("/").headers["Location"].endswith("/ui/")
    page = chat.get("/ui/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert chat.get("/ui/app.js").mimetype == "text/javascript"
    assert chat.get("/ui/../api/app.py").status_code == 404
    assert chat.get("/ui/secrets.txt").status_code == 404
