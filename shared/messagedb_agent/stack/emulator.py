"""The Pub/Sub emulator (`gcloud beta emulators pubsub start`, a Java program) and its topology.

What it delivers, as checked against emulator 0.8.20 and functions-framework 3.10:
- a push subscription posts the legacy push body, `{"message": {"data", "attributes",
  "messageId", "publishTime", ...}, "subscription": ...}` with `Content-Type:
  application/json` and no CloudEvent headers. functions-framework's `cloud_event` target
  first fails to read a CloudEvent, then converts the body (`event_conversion.
  background_event_to_cloud_event`, which recognises a raw Pub/Sub push by its `subscription`
  and `message.messageId` keys) into a `google.cloud.pubsub.topic.v1.messagePublished`
  CloudEvent whose data is `{"message": {"data", "attributes", "messageId", "publishTime"}}`:
  what Eventarc sends in GCP, so the step function needs no conversion of its own;
- `no_wrapper` push (supported by the emulator) posts the bare data as a form body, which the
  `cloud_event` target rejects, so the wrapped format is the one used;
- retry policy and dead-letter policy are honoured for push: a failing endpoint is retried
  with the policy's backoff, and after `max_delivery_attempts` the message moves to the
  dead-letter topic with `CloudPubSubDeadLetterSource*` attributes; the push body carries no
  `deliveryAttempt`.
The admin clients talk to the emulator over an explicit insecure channel, so this process's
environment is left alone (the functions get `PUBSUB_EMULATOR_HOST` instead).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, TextIO

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[import-untyped]
from google.pubsub_v1 import types
from google.pubsub_v1.services.publisher.transports import (
    PublisherGrpcTransport,
)
from google.pubsub_v1.services.subscriber.transports import (
    SubscriberGrpcTransport,
)

from messagedb_agent.stack.processes import Service, http_answers, wait_until

MAX_DELIVERY_ATTEMPTS = 5
MIN_BACKOFF_SECONDS = 1
MAX_BACKOFF_SECONDS = 10
ACK_DEADLINE_SECONDS = 300  # how long a push may take: a step may wait for a slow model


def start_emulator(
    gcloud: str,
    project: str,
    host: str,
    port: int,
    *,
    echo: TextIO | None = None,
    timeout: float = 60.0,
) -> Service:
    """Start the emulator and return once it answers HTTP."""
    service = launch_emulator(gcloud, project, host, port, echo=echo)
    wait_for_emulator(service, host, port, timeout=timeout)
    return service


def launch_emulator(
    gcloud: str, project: str, host: str, port: int, *, echo: TextIO | None = None
) -> Service:
    """Start the emulator without waiting: it boots (a few seconds of JVM) meanwhile."""
    return Service(
        "pubsub-emulator",
        [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={host}:{port}",
            f"--project={project}",
            "--quiet",
        ],
        echo=echo,
    ).start()


def wait_for_emulator(service: Service, host: str, port: int, *, timeout: float = 60.0) -> None:
    """Return once the emulator answers; stop it and raise StackError if it never does."""
    try:
        wait_until(
            lambda: http_answers(f"http://{host}:{port}/"),
            "the Pub/Sub emulator",
            timeout=timeout,
            service=service,
        )
    except BaseException:
        service.stop()
        raise


@dataclass(frozen=True)
class Topology:
    topic: str
    dead_letter_topic: str
    dead_letter_subscription: str
    push_subscription: str
    push_endpoint: str


def admin_clients(emulator_host: str) -> tuple[Any, Any]:
    """(publisher, subscriber) clients bound to the emulator at `host:port`."""
    publisher = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(emulator_host))
    )
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(emulator_host))
    )
    return publisher, subscriber


def create_topology(
    emulator_host: str,
    project: str,
    topic: str,
    dead_letter_topic: str,
    subscription: str,
    push_endpoint: str,
) -> Topology:
    """Topic, dead-letter topic with a pull subscription that keeps failures, push to step.

    The push subscription does not enable message ordering: with it, one notification in
    backoff would hold back its thread's newer ones (a user's next message included), and
    steps do not need order, since they drop whatever is no longer the head.
    """
    publisher, subscriber = admin_clients(emulator_host)
    topic_path = publisher.topic_path(project, topic)
    dead_path = publisher.topic_path(project, dead_letter_topic)
    dead_sub = subscriber.subscription_path(project, f"{dead_letter_topic}-kept")
    push_sub = subscriber.subscription_path(project, subscription)
    try:
        for path in (topic_path, dead_path):
            with contextlib.suppress(gexc.AlreadyExists):
                publisher.create_topic(name=path)
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(
                request={
                    "name": dead_sub,
                    "topic": dead_path,
                    "ack_deadline_seconds": 60,
                    "message_retention_duration": {"seconds": 7 * 24 * 3600},
                }
            )
        with contextlib.suppress(gexc.NotFound):
            subscriber.delete_subscription(subscription=push_sub)
        subscriber.create_subscription(
            request={
                "name": push_sub,
                "topic": topic_path,
                "push_config": types.PushConfig(push_endpoint=push_endpoint),
                "ack_deadline_seconds": ACK_DEADLINE_SECONDS,
                "dead_letter_policy": types.DeadLetterPolicy(
                    dead_letter_topic=dead_path, max_delivery_attempts=MAX_DELIVERY_ATTEMPTS
                ),
                "retry_policy": types.RetryPolicy(
                    minimum_backoff={"seconds": MIN_BACKOFF_SECONDS},
                    maximum_backoff={"seconds": MAX_BACKOFF_SECONDS},
                ),
            }
        )
    finally:
        publisher.transport.close()
        subscriber.close()
    return Topology(topic_path, dead_path, dead_sub, push_sub, push_endpoint)
