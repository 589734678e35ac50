"""Pub/Sub delivers at least once: extra copies of real notifications change nothing."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from tests.e2e.conftest import Live
from tests.e2e.conversation import SCRIPT, Audit, Chat, Turn, check_transcript

from messagedb_agent.notification import Notification
from messagedb_agent.store import stream_name as names

USERS = 4
COPIES = 2
AFTER = (*SCRIPT, SCRIPT[2])  # the script, then the listing again once the copies are in


def _turn_under_copies(live: Live, chat: Chat, turn: Turn, timeout: float = 30.0) -> None:
    """Send without waiting and publish every position the turn writes twice more as it lands."""
    stream = names.thread_stream(chat.thread_id)
    position = chat.send(turn.says)
    live.publish_again([Notification(stream_name=stream, position=position)] * COPIES)
    copied = {position}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = chat.events()
        fresh = [e["position"] for e in events if e["position"] > position]
        fresh = [p for p in fresh if p not in copied]
        live.publish_again(
            [Notification(stream_name=stream, position=p) for p in fresh for _ in range(COPIES)]
        )
        copied.update(fresh)
        for event in events:
            if (
                event["type"] == "LLMResponseReceived"
                and event["position"] > position
                and not event["data"]["tool_calls"]
            ):
                chat.replies.append(event["data"]["response_text"])
                return
        time.sleep(0.02)
    raise AssertionError(f"no reply to {turn.says!r} in thread {chat.thread_id}")


def _converse_under_copies(live: Live, chat: Chat) -> None:
    chat.start()
    for turn in SCRIPT:
        _turn_under_copies(live, chat, turn)


def test_copies_of_notifications_mid_conversation_and_after_it_duplicate_no_effect(
    live: Live,
) -> None:
    with ExitStack() as clients:
        chats = [
            Chat(clients.enter_context(live.client(f"copies-{i}-{uuid.uuid4().hex[:6]}")))
            for i in range(USERS)
        ]
        with ThreadPoolExecutor(USERS) as pool:
            list(pool.map(lambda chat: _converse_under_copies(live, chat), chats))
        finished = {chat.thread_id: check_transcript(chat) for chat in chats}

        # After completion: every position of every thread, twice more (the head included).
        before = {t: live.tap.counts(names.thread_stream(t)) for t in finished}
        copies = [
            Notification(stream_name=names.thread_stream(thread_id), position=event["position"])
            for thread_id, events in finished.items()
            for event in events
            for _ in range(COPIES)
        ]
        live.publish_again(copies)
        for thread_id, events in finished.items():
            wanted = Counter(
                {e["position"]: before[thread_id][e["position"]] + COPIES for e in events}
            )
            assert live.tap.missing(names.thread_stream(thread_id), (), at_least=wanted) == set()
        time.sleep(1.0)  # the push subscription delivers within milliseconds; give it a second

        for chat in chats:
            assert chat.events() == finished[chat.thread_id]  # nothing was appended
            chat.say(AFTER[-1].says)  # and the task list still holds each task once
            events = check_transcript(chat, AFTER)
            assert Audit.of(events).types["UserMessageAdded"] == len(AFTER)
