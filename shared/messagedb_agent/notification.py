"""The message that asks for a step: "stream S has reached position P"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from messagedb_agent.store import stream_name as names


class InvalidNotification(ValueError):
    """A notification that can never be processed; acknowledge it, do not retry it."""


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_name: str = Field(min_length=1, max_length=names.MAX_LENGTH)
    position: int = Field(ge=0)

    @field_validator("stream_name")
    @classmethod
    def _thread_stream(cls, value: str) -> str:
        names.thread_id_of(value)
        return value

    @classmethod
    def parse(cls, payload: Any) -> Notification:
        """Validate a decoded payload, raising InvalidNotification with a readable reason."""
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise _invalid(exc) from exc

    @classmethod
    def parse_json(cls, raw: bytes | str) -> Notification:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise _invalid(exc) from exc


def _invalid(exc: ValidationError) -> InvalidNotification:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}" for err in exc.errors()
    )
    return InvalidNotification(f"invalid notification: {problems}")


class NotificationPublisher(Protocol):
    """Announces notifications (Pub/Sub in the cloud); returns once delivery is confirmed."""

    def publish(self, notifications: Sequence[Notification]) -> None: ...
