"""Pushing a finished turn's reply to the front-end's callback URL, one event per attempt."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from messagedb_agent.events.base import Event


class ReplyDeliveryRequested(Event):
    """Claims a delivery attempt (written with `expected_version`, leased like any step)."""

    type: ClassVar[str] = "ReplyDeliveryRequested"

    step_id: str
    reply_position: int
    callback_url: str
    attempt: int = 1
    lease_expires_at: datetime


class ReplyDelivered(Event):
    type: ClassVar[str] = "ReplyDelivered"

    step_id: str
    attempt: int
    status_code: int


class ReplyDeliveryFailed(Event):
    type: ClassVar[str] = "ReplyDeliveryFailed"

    step_id: str
    attempt: int
    error_message: str
    status_code: int | None = None
    retryable: bool = False
    retry_at: datetime | None = None
