"""Publishers for tests: one that keeps what it was asked to publish, one that drops it."""

from __future__ import annotations

from collections.abc import Sequence

from messagedb_agent.notification import Notification


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Notification] = []

    def publish(self, notifications: Sequence[Notification]) -> None:
        self.published.extend(notifications)


class NullPublisher:
    """Publishes nothing: the relay is left to announce every append."""

    def publish(self, notifications: Sequence[Notification]) -> None:
        return None
