"""The real Pub/Sub emulator for tests: one per session, on a free port.

Imported by the conftest files that need it, so each test directory gets the fixture without
a root-level plugin. `PUBSUB_EMULATOR_HOST` is set for the session, as the SDK expects.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from messagedb_agent.stack.emulator import admin_clients, start_emulator
from messagedb_agent.stack.processes import free_port

PROJECT = "test-project"


@dataclass(frozen=True)
class Emulator:
    host: str
    project: str
    publisher: Any  # admin clients bound to the emulator
    subscriber: Any

    def topic(self) -> str:
        """A new topic with a pull subscription; returns the topic's short name."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.publisher.create_topic(name=self.topic_path(name))
        self.subscriber.create_subscription(
            request={
                "name": self.subscription_path(name),
                "topic": self.topic_path(name),
                "enable_message_ordering": True,
            }
        )
        return name

    def topic_path(self, name: str) -> str:
        return f"projects/{self.project}/topics/{name}"

    def subscription_path(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}-sub"

    def pull(self, name: str, expected: int, timeout: float = 10.0) -> list[Any]:
        """Pull (and ack) until `expected` messages arrived or the time is up."""
        import time

        received: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(received) < expected and time.monotonic() < deadline:
            response = self.subscriber.pull(
                subscription=self.subscription_path(name), max_messages=100, timeout=5
            )
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=self.subscription_path(name),
                    ack_ids=[m.ack_id for m in response.received_messages],
                )
                received.extend(m.message for m in response.received_messages)
        return received


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Emulator]:
    gcloud = shutil.which("gcloud")
    assert gcloud is not None, "these tests need the Google Cloud CLI with its Pub/Sub emulator"
    port = free_port()
    service = start_emulator(gcloud, PROJECT, "127.0.0.1", port)
    host = f"127.0.0.1:{port}"
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    publisher, subscriber = admin_clients(host)
    try:
        yield Emulator(host, PROJECT, publisher, subscriber)
    finally:
        subscriber.close()
        publisher.transport.close()
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
        service.stop()
