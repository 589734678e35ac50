"""What the user does to a thread."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from messagedb_agent.events.base import UNANSWERED_AFTER, Event

__all__ = ["UNANSWERED_AFTER", "SessionTerminationRequested", "UserMessageAdded"]


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
