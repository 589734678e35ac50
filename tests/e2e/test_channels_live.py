"""Telegram and Google Chat through the running stack: each platform's request to the ingest
function over HTTP (functions-framework), the step function triggered through the Pub/Sub
emulator, the reply through the platform's API: plain HTTP to the local Bot API, and the
official `google-apps-chat` client, authorised by google-auth as a service account, to the
local Chat. A repeated delivery is answered once, and the conversation goes on."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from tests.channels.fake_google_chat import headers as chat_headers
from tests.channels.fake_google_chat import message_event as chat_event
from tests.channels.fake_telegram import GROUP, TOPIC, text_update
from tests.channels.fake_telegram import headers as telegram_headers
from tests.e2e.conftest import KeepAliveRetry, Live


def _wait(found: Callable[[], list[Any]], count: int, what: str) -> list[Any]:
    deadline = time.monotonic() + 60
    while len(seen := found()) < count:
        assert time.monotonic() < deadline, f"{what}: {len(seen)} of {count}"
        time.sleep(0.1)
    return seen


def test_a_telegram_group_conversation_through_the_stack_is_answered_once_in_its_topic(
    live: Live,
) -> None:
    user = time.time_ns() % 10**9
    first = text_update("add a task to water the fern", user=user, chat=GROUP, topic=TOPIC)
    path = "/v1/channels/telegram/webhook"

    def mine() -> list[Any]:
        return [s for s in live.telegram.in_chat(GROUP) if "fern" in s.text]

    with httpx.Client(base_url=live.ingest, timeout=30, transport=KeepAliveRetry()) as http:
        for _ in range(2):  # Telegram repeats an update it got no 2xx for
            answer = http.post(path, content=json.dumps(first), headers=telegram_headers())
            assert answer.status_code == 200, answer.text
            assert answer.json()["method"] == "sendChatAction"
        [reply] = _wait(mine, 1, "no reply in the topic")
        assert reply.body["message_thread_id"] == TOPIC
        later = text_update("list my tasks", user=user, chat=GROUP, topic=TOPIC, mention=False)
        assert http.post(path, content=json.dumps(later), headers=telegram_headers()).is_success
        _wait(mine, 2, "no second reply")  # the same conversation: the task is listed
    time.sleep(1.0)  # a reply to the repeated update would have come by now
    assert len(mine()) == 2


def test_a_google_chat_conversation_through_the_stack_is_answered_once_in_its_thread(
    live: Live,
) -> None:
    chat = live.google_chat
    person, thread = str(time.time_ns() % 10**12), f"T{time.time_ns() % 10**9}"
    first = chat_event("add a task to call the plumber", person=person, thread=thread)
    path = "/v1/channels/google-chat/events"

    def mine() -> list[Any]:
        return [p for p in chat.posted if p.thread == thread]

    with httpx.Client(base_url=live.ingest, timeout=30, transport=KeepAliveRetry()) as http:
        for _ in range(2):
            token = chat.project_token()
            answer = http.post(path, content=json.dumps(first), headers=chat_headers(token))
            assert answer.status_code == 200, answer.text
        [reply] = _wait(mine, 1, "no reply in the thread")
        assert "plumber" in reply.text
        later = chat_event("list my tasks", person=person, thread=thread)
        sent = http.post(
            path, content=json.dumps(later), headers=chat_headers(chat.project_token())
        )
        assert sent.status_code == 200
        second = _wait(mine, 2, "no second reply")[-1]
    assert "plumber" in second.text
    time.sleep(1.0)
    assert len(mine()) == 2
