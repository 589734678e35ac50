"""What the user does to a thread."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from messagedb_agent.events.base import Event


class UserMessageAdded(Event):
    type: ClassVar[str] = "UserMessageAdded"

    message: str
    timestamp: datetime | None = None


class SessionTerminationRequested(Event):
    type: ClassVar[str] = "SessionTerminationRequested"

    reason: str = "user_requested"
    requested_by: str | None = None
