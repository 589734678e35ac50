"""What the user does to a thread."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from messagedb_agent.events.base import UNANSWERED_AFTER, Event

__all__ = ["UNANSWERED_AFTER", "SessionTerminationRequested", "TurnCancelled", "UserMessageAdded"]


class UserMessageAdded(Event):
    type: ClassVar[str] = "UserMessageAdded"
    asks_for_step: ClassVar[bool] = True  # the model's answer

    message: str
    timestamp: datetime | None = None


class SessionTerminationRequested(Event):
    type: ClassVar[str] = "SessionTerminationRequested"
    asks_for_step: ClassVar[bool] = True  # the step that ends the thread

    reason: str = "user_requested"
    requested_by: str | None = None


class TurnCancelled(Event):
    """The user stopped the running turn. No step of it starts after this, on any instance
    (every claim is written at the head its worker read, and this moved the head); a model
    call or tool already running finishes and is recorded, but nothing acts on it; its calls
    waiting for approval are withdrawn. The thread waits for the next user message."""

    type: ClassVar[str] = "TurnCancelled"

    requested_by: str
    reason: str | None = None
    # the turn's messages and results leave the model's context (they stay in the log)
    rollback: bool = False
