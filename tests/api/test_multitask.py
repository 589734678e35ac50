"""Policies for a message sent while a turn runs, through the API: a turn that waits for an
approval is running; `?multitask=reject` (or the thread's own `reject`) answers 409 and writes
nothing, `interrupt` cancels it and answers the new message; bad values are refused."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.test_approvals import Conversation, chat, stepping, waiting

from messagedb_agent.store.client import MessageStore

__all__ = ["chat", "stepping", "waiting"]  # fixtures, shared with the approval route's tests


def post(thread: Conversation, message: str, query: str = "") -> Any:
    return thread.client.post(
        f"/v1/threads/{thread.id}/messages{query}", json={"message": message}, headers=thread.auth
    )


def test_reject_answers_409_to_every_message_while_the_turn_runs_and_writes_nothing(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore
) -> None:
    """(Five racing writers are tests/engine/test_multitask.py's; one client here.)"""
    thread, _ = waiting
    before = thread.event_types(store)
    answers = [post(thread, f"hurry {n}", "?multitask=reject") for n in range(5)]
    assert [a.status_code for a in answers] == [409] * 5
    assert {a.get_json()["error"]["code"] for a in answers} == {"turn_running"}
    assert thread.event_types(store) == before


def test_interrupt_cancels_the_waiting_turn_and_answers_the_new_message(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore
) -> None:
    thread, _ = waiting
    answer = post(thread, "what are my tasks?", "?multitask=interrupt&wait=20")
    assert answer.status_code == 200, answer.get_json()
    assert "walk the dog" in answer.get_json()["reply"]["text"]
    assert thread.detail()["pending_approvals"] == []
    assert thread.event_types(store).count("TurnCancelled") == 1


def test_a_threads_own_policy_applies_when_the_request_names_none(
    chat: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    created = chat.post("/v1/threads", json={"multitask": "reject"}, headers=auth)
    assert created.status_code == 201
    thread = Conversation.__new__(Conversation)
    thread.client, thread.auth, thread.id = chat, auth, created.get_json()["thread_id"]
    first = post(thread, "add a task to buy milk")
    assert first.status_code == 202
    second = post(thread, "and another")
    assert second.status_code in (202, 409)  # 202 only if the first turn finished meanwhile


@pytest.mark.parametrize("query", ["?multitask=maybe", "?multitask=", "?multitask=REJECT"])
def test_an_unknown_policy_is_refused(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore, query: str
) -> None:
    thread, _ = waiting
    before = thread.event_types(store)
    answer = post(thread, "hello", query)
    assert answer.status_code == 400
    assert thread.event_types(store) == before
