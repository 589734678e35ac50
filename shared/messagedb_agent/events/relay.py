"""The relay's stored state, as Eventide stores a consumer position: a `Recorded` event."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from messagedb_agent.events.base import Event


class PositionRecorded(Event):
    """The global position swept up to, and the streams to re-announce when they fall due.

    `watch` maps a stream whose head may need a step later (a claim, a backoff, a head that
    asks for a step) to the time the relay looks at it again, so a crashed worker's step or a
    lost notification is re-announced after the category has moved on (relay/sweep.py).
    """

    type: ClassVar[str] = "Recorded"

    position: int = Field(ge=0)
    watch: dict[str, datetime] = Field(default_factory=dict)
