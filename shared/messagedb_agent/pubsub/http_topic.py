"""Publishing to the local stack's built-in topic, for machines without the Pub/Sub emulator.

The built-in topic (`messagedb_agent.stack.local_topic`) accepts the body of Pub/Sub's REST
`topics.publish` call, so this publisher sends exactly what the REST API would receive and,
like `PubSubPublisher`, returns only once the topic has confirmed every message (without an
ordering key, as `PubSubPublisher` sends them).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence

import httpx

from messagedb_agent.notification import Notification
from messagedb_agent.pubsub.publisher import PublishError, encode, send_span, trace_attributes


class HttpTopicPublisher:
    def __init__(self, base_url: str, project: str, topic: str, *, timeout: float = 10.0) -> None:
        self.topic = topic
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project}/topics/{topic}:publish"
        self.timeout = timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def publish(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        with send_span(self.topic, len(notifications)):  # the same span as on Pub/Sub
            self._publish(notifications)

    def _publish(self, notifications: Sequence[Notification]) -> None:
        attributes = trace_attributes()
        body = {
            "messages": [
                {"data": base64.b64encode(encode(n)).decode("ascii"), "attributes": attributes}
                for n in notifications
            ]
        }
        try:
            response = self.client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise PublishError(f"the local topic at {self.url} did not answer: {exc}") from exc
        if response.status_code != 200:
            raise PublishError(
                f"the local topic at {self.url} refused {len(notifications)} notifications: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
