"""A publisher that keeps what it was asked to publish, in order."""

from __future__ import annotations

from collections.abc import Sequence

from messagedb_agent.notification import Notification


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Notification] = []

    def publish(self, notifications: Sequence[Notification]) -> None:
        self.published.extend(notifications)
