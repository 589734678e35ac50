"""Pub/Sub at the edges: the publisher, the push envelope, and the handlers behind the functions.

Names are loaded on first use (PEP 562), so a function that imports one handler does not pay
for the Pub/Sub SDK before its first publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messagedb_agent.lazy import lazy_names

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
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

_WHERE = {
    "PubSubSettings": "config",
    "MESSAGE_PUBLISHED": "envelope",
    "Delivery": "envelope",
    "cloud_event_headers": "envelope",
    "decode_cloud_event": "envelope",
    "decode_push": "envelope",
    "encode_push": "envelope",
    "FunctionInstance": "instance",
    "PublishError": "publisher",
    "PubSubPublisher": "publisher",
    "RelayReport": "relay_handler",
    "relay_once": "relay_handler",
    "RedeliverLater": "step_handler",
    "StepDelivery": "step_handler",
    "publisher_from_settings": "transport",
}

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


__getattr__ = lazy_names(__name__, _WHERE)
