"""Pick the publisher the environment asks for: Pub/Sub (or its emulator), or the local topic."""

from __future__ import annotations

from messagedb_agent.notification import NotificationPublisher
from messagedb_agent.pubsub.config import PubSubSettings
from messagedb_agent.pubsub.http_topic import HttpTopicPublisher
from messagedb_agent.pubsub.publisher import PubSubPublisher


def publisher_from_settings(settings: PubSubSettings | None = None) -> NotificationPublisher:
    settings = settings or PubSubSettings()
    if settings.local_topic_url:
        return HttpTopicPublisher(
            settings.local_topic_url,
            settings.project,
            settings.pubsub_topic,
            timeout=settings.pubsub_publish_timeout_seconds,
        )
    return PubSubPublisher.from_settings(settings)
