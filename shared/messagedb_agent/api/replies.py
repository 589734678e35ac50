"""Waiting for the assistant's answer to one user message, by polling its thread.

A final reply is an `LLMResponseReceived` with no tool calls, from a call whose context
included the message (its claim's `context_position` is at or after it), or a
`SessionCompleted`. Each poll is one read of the messages after the last one seen; claims
written before the message are never read, and need not be: their calls could not see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from messagedb_agent.api.models import Reply
from messagedb_agent.events import (
    LLMCallRequested,
    LLMResponseReceived,
    SessionCompleted,
    from_message,
)

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

# The first polls come quickly (a short reply can land within tens of milliseconds), then
# back off, so a request waiting out a slow model costs ten queries a second, not forty.
FIRST_POLL_SECONDS = 0.025
MAX_POLL_SECONDS = 0.1


def wait_for_reply(
    store: MessageStore,
    stream: str,
    message_position: int,
    seconds: float,
    *,
    poll: float = FIRST_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Reply | None:
    deadline = time.monotonic() + seconds
    context_of: dict[str, int] = {}  # LLM step id -> position its context reached
    next_position = message_position + 1
    while True:
        for message in store.get_stream_messages(stream, next_position):
            next_position = message.position + 1
            if message.type not in _INTERESTING:
                continue
            event = from_message(message).event
            if isinstance(event, LLMCallRequested):
                context_of[event.step_id] = event.context_position
            elif isinstance(event, LLMResponseReceived):
                # A step claimed before the message (absent here) answered an older context.
                seen = context_of.get(event.step_id, -1)
                if not event.tool_calls and seen >= message_position:
                    return Reply(text=event.response_text, position=message.position)
            elif isinstance(event, SessionCompleted):
                return Reply(text=event.message or "", position=message.position)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sleep(min(poll, remaining))
        poll = min(poll * 1.5, MAX_POLL_SECONDS)


_INTERESTING = frozenset({LLMCallRequested.type, LLMResponseReceived.type, SessionCompleted.type})
