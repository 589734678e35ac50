"""Pushing a finished turn's reply to the front-end's callback URL, one event per attempt."""

from __future__ import annotations

from typing import ClassVar

from messagedb_agent.events.base import Claim, Event, Failure


class ReplyDeliveryRequested(Claim):
    """Claims a delivery attempt (written with `expected_version`, leased like any step)."""

    type: ClassVar[str] = "ReplyDeliveryRequested"

    step_id: str
    reply_position: int
    callback_url: str
    attempt: int = 1


class ReplyDelivered(Event):
    type: ClassVar[str] = "ReplyDelivered"
    asks_for_step: ClassVar[bool] = True  # a model call may wait behind a delivered notice

    step_id: str
    attempt: int
    status_code: int


class BusyNoticePosted(Event):
    """A chat conversation was told "Working on it…" while a long turn ran (written with the
    step's results). The turn's next delivery replaces that message, where the platform allows
    editing one, instead of posting another."""

    type: ClassVar[str] = "BusyNoticePosted"

    step_id: str  # the step that was running
    reference: str  # the platform's id for the message: Slack's `ts`, Google Chat's name


class ReplyDeliveryFailed(Failure):
    type: ClassVar[str] = "ReplyDeliveryFailed"

    step_id: str
    attempt: int
    error_message: str
    status_code: int | None = None
    # A reply sent as several messages (Telegram's): how many of them the platform had taken
    # when this attempt failed, counting earlier attempts'. The next attempt starts after them.
    parts_delivered: int = 0
