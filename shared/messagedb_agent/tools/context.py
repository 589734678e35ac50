"""What a tool knows about the call it serves, supplied by the engine and never by the model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from messagedb_agent.store.client import MessageStore


@dataclass(frozen=True)
class ToolContext:
    """The acting user, where the call came from, and what it may use.

    `owner` is the thread's owner: tools act for this user only, whatever the arguments say.
    `step_id` plus `tool_call_id` name the call uniquely and stably across redeliveries, so a
    tool that writes derives its message ids from them and never writes twice. `now` is read
    once by the caller, which keeps tools deterministic under test.
    """

    owner: str
    stream_name: str
    step_id: str
    tool_call_id: str
    store: MessageStore | None
    now: datetime
