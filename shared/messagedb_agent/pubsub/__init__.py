"""Pub/Sub at the edges: the publisher, the push envelope, and the handlers behind the functions."""

from messagedb_agent.pubsub.config import PubSubSettings
from messagedb_agent.pubsub.envelope import (
    MESSAGE_PUBLISHED,
    Delivery,
    cloud_event_headers,
    decode_cloud_event,
    decode_push,
    encode_push,
)
from messagedb_agent.pubsub.instance import FunctionInstance
from messagedb_agent.pubsub.publisher import PublishError, PubSubPublisher
from messagedb_agent.pubsub.relay_handler import RelayReport, relay_once
from messagedb_agent.pubsub.step_handler import RedeliverLater, StepDelivery
from messagedb_agent.pubsub.transport import publisher_from_settings

__all__ = [
    "MESSAGE_PUBLISHED",
    "Delivery",
    "FunctionInstance",
    "PubSubPublisher",
    "PubSubSettings",
    "PublishError",
    "RedeliverLater",
    "RelayReport",
    "StepDelivery",
    "cloud_event_headers",
    "decode_cloud_event",
    "decode_push",
    "encode_push",
    "publisher_from_settings",
    "relay_once",
]
