"""The API's guards, once each through the running stack (tests/api covers them in depth)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.e2e.conftest import RATE_LIMIT_BURST, Live
from tests.e2e.conversation import Chat, ok

from messagedb_agent.api import issue_dev_token


@pytest.fixture
def chat(live: Live) -> Iterator[Chat]:
    with live.client(f"guard-{uuid.uuid4().hex[:8]}") as http:
        chat = Chat(http)
        chat.start()
        yield chat


def test_health_answers_without_a_token(live: Live) -> None:
    answer = httpx.get(f"{live.ingest}/healthz", timeout=10)

    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_a_tool_from_tool_modules_is_called_through_the_running_stack(chat: Chat) -> None:
    reply = chat.say("/call set_priority task_id=3 level=high")

    assert 'set_priority returned {"level": "high", "owner": "guard-' in reply
    assert reply.endswith('", "task_id": 3}')


def test_a_request_without_a_valid_token_is_refused(live: Live) -> None:
    forged = issue_dev_token("mallory", "not-the-stack-secret-0123456789abcdef")

    missing = httpx.get(f"{live.ingest}/v1/threads", timeout=10)
    wrong = httpx.get(
        f"{live.ingest}/v1/threads", headers={"Authorization": f"Bearer {forged}"}, timeout=10
    )

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["error"]["code"] == "unauthorized"
    assert wrong.json()["error"]["code"] == "unauthorized"


def test_another_users_thread_is_not_found(live: Live, chat: Chat) -> None:
    with live.client("someone-else") as other:
        answer = other.get(f"/v1/threads/{chat.thread_id}")

    assert answer.status_code == 404


def test_an_empty_message_is_refused_and_nothing_is_written(chat: Chat) -> None:
    before = len(chat.events())

    answer = chat.http.post(f"/v1/threads/{chat.thread_id}/messages", json={"message": ""})

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"]
    assert len(chat.events()) == before


def test_a_wait_beyond_the_limit_is_refused(chat: Chat) -> None:
    answer = chat.http.post(
        f"/v1/threads/{chat.thread_id}/messages", params={"wait": 31}, json={"message": "hi"}
    )

    assert answer.status_code == 400
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["wait"]


def test_a_wait_that_runs_out_answers_202_and_the_reply_lands_later(chat: Chat) -> None:
    answer = chat.http.post(
        f"/v1/threads/{chat.thread_id}/messages",
        params={"wait": 0.001},
        json={"message": "what is 2+2"},
    )

    accepted = ok(answer, 202)
    assert "reply" not in accepted
    assert chat.reply_after(accepted["position"]).endswith("2+2 = 4")


def test_a_retried_post_with_the_same_idempotency_key_is_written_once(chat: Chat) -> None:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    path = f"/v1/threads/{chat.thread_id}/messages"

    first = chat.http.post(path, json={"message": "echo once"}, headers=headers)
    retry = chat.http.post(path, json={"message": "echo once"}, headers=headers)

    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    said = [e for e in chat.events() if e["type"] == "UserMessageAdded"]
    assert [e["data"]["message"] for e in said] == ["echo once"]


def test_a_burst_beyond_the_rate_limit_is_answered_429(live: Live) -> None:
    with (
        live.client(f"eager-{uuid.uuid4().hex[:8]}") as http,
        ThreadPoolExecutor(RATE_LIMIT_BURST) as pool,
    ):
        # all at once, so that the bucket's refill (one a second) cannot keep up however slow
        # the machine is
        answers = list(pool.map(lambda _: http.post("/v1/threads", json={}), range(30)))

    statuses = [a.status_code for a in answers]
    assert set(statuses) == {201, 429}
    assert statuses.count(201) >= RATE_LIMIT_BURST
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
