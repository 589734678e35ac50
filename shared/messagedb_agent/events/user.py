"""What the user does to a thread."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from messagedb_agent.events.base import Event

# A message still at the head this long after it was written lost its notification (a push
# dropped, or dead-lettered while the step function was down): the relay announces it again.
UNANSWERED_AFTER = timedelta(seconds=30)


class UserMessageAdded(Event):
    type: ClassVar[str] = "UserMessageAdded"

    message: str
    timestamp: datetime | None = None

    def due(self) -> datetime | None:
        """A message asks for a step: if nothing follows it in time, the relay steps in."""
        return self.timestamp + UNANSWERED_AFTER if self.timestamp is not None else None


class SessionTerminationRequested(Event):
    type: ClassVar[str] = "SessionTerminationRequested"

    reason: str = "user_requested"
    requested_by: str | None = None
