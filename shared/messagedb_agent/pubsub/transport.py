"""Pick the publisher the settings ask for: Pub/Sub (or its emulator), or the local topic."""

from __future__ import annotations

from messagedb_agent.notification import NotificationPublisher
from messagedb_agent.pubsub.http_topic import HttpTopicPublisher
from messagedb_agent.pubsub.publisher import PubSubPublisher
from messagedb_agent.settings import Settings


def publisher_from_settings(settings: Settings) -> NotificationPublisher:
    pubsub = settings.pubsub
    if pubsub.local_topic_url:
        return HttpTopicPublisher(
            pubsub.local_topic_url,
            settings.pubsub_project,
            pubsub.pubsub_topic,
            timeout=pubsub.pubsub_publish_timeout_seconds,
        )
    return PubSubPublisher.from_settings(settings)
