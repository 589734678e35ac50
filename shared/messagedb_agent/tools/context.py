"""The two halves of one tool call as the engine and the tools share them: what a tool is told,
and what becomes of the call. The engine builds the first and records the second; tools and
executors implement the protocol in between, so nothing is copied from one shape to another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

    @property
    def idempotency_key(self) -> str:
        """The same for every run of this call (a rerun after its worker went silent): the key
        an idempotent tool hands to what it changes, so the change happens once."""
        return f"{self.step_id}/{self.tool_call_id}"


@dataclass(frozen=True)
class ToolOutcome:
    """The result of one call: `result` when `ok`, else an error the model can read.

    `retryable` says the same call may succeed later (a timeout, a dependency down); the
    engine decides whether an attempt is left.
    """

    ok: bool
    result: Any = None
    error_message: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    execution_time_ms: float = 0.0
