"""Twenty users chatting at once, each in their own thread, every turn through the emulator."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from tests.e2e.conftest import Live
from tests.e2e.conversation import SCRIPT, Chat, check_transcript, turn_starts

from messagedb_agent.store import stream_name as names

USERS = 20


def test_twenty_concurrent_threads_each_get_a_correct_exactly_once_transcript(
    live: Live,
) -> None:
    with ExitStack() as clients:
        chats = [
            Chat(clients.enter_context(live.client(f"crowd-{i}-{uuid.uuid4().hex[:6]}")))
            for i in range(USERS)
        ]

        with ThreadPoolExecutor(USERS) as pool:
            list(pool.map(Chat.run, chats))

        for chat in chats:
            events = check_transcript(chat)
            # Each turn's first claim was read at its user message, and the tap subscription
            # on the stack's topic saw that position announced: the turn came through Pub/Sub.
            started = turn_starts(events)
            assert len(started) == len(SCRIPT)
            assert live.tap.missing(names.thread_stream(chat.thread_id), set(started)) == set()
