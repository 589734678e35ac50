"""The step function: Pub/Sub-triggered; one delivery, one step (see `pubsub.step_handler`).

Returning acknowledges the message; an exception asks Pub/Sub to redeliver it.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from messagedb_agent.observability import configure
from messagedb_agent.runtime import Runtime
from messagedb_agent.settings import Settings

runtime = Runtime(Settings())
configure(runtime.settings)  # JSON for Cloud Logging on Cloud Run, readable locally; spans too


@functions_framework.cloud_event
def step(cloud_event: CloudEvent) -> None:
    runtime.step_delivery.handle_event(cloud_event)
