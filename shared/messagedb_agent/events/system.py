"""Lifecycle events of a thread."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from messagedb_agent.events.base import Event

CompletionReason = Literal["success", "failure", "timeout", "terminated", "max_iterations"]


class SessionStarted(Event):
    type: ClassVar[str] = "SessionStarted"

    thread_id: str
    owner: str
    title: str | None = None
    callback_url: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    forked_from: str | None = None
    forked_at_position: int | None = None
    initial_context: dict[str, Any] | None = None
    # what a message sent while a turn runs does, unless its request says (see `MULTITASK`)
    multitask: str | None = None


# A message sent while a turn runs: answered after it (`enqueue`, the default); the running turn
# cancelled and the message answered with it in context (`interrupt`) or without it
# (`rollback`); or refused (`reject`).
MULTITASK = ("enqueue", "interrupt", "rollback", "reject")


class SessionCompleted(Event):
    """The thread is over: no further step runs, new user messages are refused."""

    type: ClassVar[str] = "SessionCompleted"
    asks_for_step: ClassVar[bool] = True  # the closing message's delivery, if any

    completion_reason: CompletionReason
    message: str | None = None


class ErrorOccurred(Event):
    """A failure that is not an LLM or tool failure (those have their own events)."""

    type: ClassVar[str] = "ErrorOccurred"

    error_type: str
    error_message: str
    stack_trace: str | None = None
    step_id: str | None = None
