"""Waiting for the assistant's answer to one user message.

Which event is that answer is the anchoring projection's call (`projections.anchors`); here
each read takes only the messages after the last one seen and feeds them to it. Reads happen
when the database announces a possible reply on the thread (`store.signals`), and once a second
besides; without a listener they fall back to polling, quickly at first, then ten a second.
A turn that stops to wait for a tool call's approval ends the wait at once: no reply comes
before the owner decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING

from messagedb_agent.api.models import Reply
from messagedb_agent.events.agent import LLMCallFailed, LLMCallRequested, LLMResponseReceived
from messagedb_agent.events.approval import ToolApprovalRequested
from messagedb_agent.events.mapper import from_message
from messagedb_agent.events.system import SessionCompleted
from messagedb_agent.projections.anchors import ReplyWatch, reply_text
from messagedb_agent.store.signals import FALLBACK_SECONDS

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore
    from messagedb_agent.store.signals import StreamSignals

# The first polls come quickly (a short reply can land within tens of milliseconds), then
# back off, so a request waiting out a slow model costs ten queries a second, not forty.
FIRST_POLL_SECONDS = 0.025
MAX_POLL_SECONDS = 0.1
# What the watch needs to see; the rest is skipped before it is decoded.
_ANCHORING = frozenset(
    {
        LLMCallRequested.type,
        LLMCallFailed.type,
        LLMResponseReceived.type,
        SessionCompleted.type,
        ToolApprovalRequested.type,
    }
)


def wait_for_reply(
    store: MessageStore,
    stream: str,
    message_position: int,
    seconds: float,
    *,
    poll: float = FIRST_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    signals: StreamSignals | None = None,
) -> Reply | None:
    deadline = time.monotonic() + seconds
    watch = ReplyWatch(message_position)
    next_position = message_position + 1
    with signals.watch(stream) if signals is not None else nullcontext() as signal:
        while True:
            messages = store.get_stream_messages(stream, next_position)
            if messages:
                next_position = messages[-1].position + 1
            found = watch.feed(from_message(m) for m in messages if m.type in _ANCHORING)
            if found is not None:
                return Reply(text=reply_text(found), position=found.position)
            if watch.approval is not None:
                return None  # the turn waits for its owner's decision, not for the model
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if signal is not None and signal.listening:
                signal.wait(min(FALLBACK_SECONDS, remaining))
            else:
                sleep(min(poll, remaining))
                poll = min(poll * 1.5, MAX_POLL_SECONDS)
