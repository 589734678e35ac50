"""Cancelling a running turn through the API, on the real engine and Message DB: a turn that
waits for an approval is stopped and its approval withdrawn; cancelling when nothing runs
writes nothing; another user's thread is a 404; the next message is answered."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import bearer
from tests.api.test_approvals import Conversation, chat, stepping, waiting
from tests.api.test_openapi import conforms

from messagedb_agent.store.client import MessageStore

__all__ = ["chat", "stepping", "waiting"]  # fixtures, shared with the approval route's tests


def cancel(thread: Conversation, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return thread.client.post(
        f"/v1/threads/{thread.id}/cancel", json=body, headers=headers or thread.auth
    )


def test_a_turn_waiting_for_approval_is_cancelled_and_the_next_message_answered(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore
) -> None:
    thread, approval = waiting
    response = cancel(thread, {"reason": "changed my mind"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["cancelled"] is True
    assert body["position"] == thread.event_types(store).index("TurnCancelled")
    document = thread.client.get("/openapi.json").get_json()
    conforms(document, "TurnCancellation", body)
    assert "/v1/threads/{thread_id}/cancel" in document["paths"]
    assert thread.detail()["pending_approvals"] == []
    late = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    assert late.status_code == 409
    assert late.get_json()["error"]["code"] == "approval_decided"
    assert "walk the dog" in thread.say("what are my tasks?")  # never deleted


def test_cancelling_when_nothing_runs_says_so_and_writes_nothing(
    chat: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread = Conversation(chat, auth)
    thread.say("what is 2+2?")
    before = thread.event_types(store)
    response = cancel(thread)
    assert response.status_code == 200
    assert response.get_json()["cancelled"] is False
    assert response.get_json()["position"] is None
    assert thread.event_types(store) == before


def test_another_users_thread_cannot_be_cancelled(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore
) -> None:
    thread, _ = waiting
    before = thread.event_types(store)
    response = cancel(thread, headers=bearer("mallory"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "thread_not_found"
    assert thread.event_types(store) == before


@pytest.mark.parametrize(
    "body", [{"reason": "x" * 501}, {"reason": "a\x00b"}, {"unknown": 1}, [], "stop"]
)
def test_a_malformed_cancellation_is_refused_and_writes_nothing(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore, body: Any
) -> None:
    thread, _ = waiting
    before = thread.event_types(store)
    response = cancel(thread, body)
    assert response.status_code == 400, response.get_json()
    assert thread.event_types(store) == before
