"""Immutable, typed, schema-versioned events, and the metadata every one of them carries.

An event class declares its Message DB `type` name and `schema_version`; subclasses register
themselves so the mapper can read a stored message back into the right class. Metadata uses
Eventide's camelCase keys, so Message DB's own correlation filter
(`metadata->>'correlationStreamName'`) works on our streams.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# A head that asks for a step and is still the head this long after it was written lost its
# notification (a push dropped, or dead-lettered while the step function was down): the relay
# announces it again.
UNANSWERED_AFTER = timedelta(seconds=30)


class Event(BaseModel):
    """Base of every event payload. Frozen; unknown fields from newer writers are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    registry: ClassVar[dict[str, builtins.type[Event]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type")
        if isinstance(name, str):
            existing = Event.registry.get(name)
            if existing is not None and existing is not cls:
                raise TypeError(f"event type {name!r} is declared twice")
            Event.registry[name] = cls

    # A head of this type asks for a step as soon as it is written (a user message, a tool
    # result, a model response, a termination request ...): see `due`.
    asks_for_step: ClassVar[bool] = False

    def due(self, written: datetime) -> datetime | None:
        """When the relay should look at a thread whose head is still this event, written at
        `written`; None when such a head never needs a step by itself (the thread waits for
        its user, or the event is not a step's).

        A claim is due when its lease ends, a retryable failure at its retry time; any other
        head that asks for a step is due `UNANSWERED_AFTER` after it was written: its own
        notification (and Pub/Sub's redeliveries) had that long. Whether a step is really
        needed then is the next-step projection's answer, which the relay asks (relay/sweep.py).
        """
        return written + UNANSWERED_AFTER if self.asks_for_step else None


class Claim(Event):
    """A step's claim, written with `expected_version`; its lease says how long others wait
    for a silent claimant before the step is offered again."""

    lease_expires_at: datetime

    def due(self, written: datetime) -> datetime | None:
        return self.lease_expires_at


class Failure(Event):
    """A failed attempt of a step; a retryable one says when it may be tried again."""

    retryable: bool = False
    retry_at: datetime | None = None

    def due(self, written: datetime) -> datetime | None:
        """A failure always asks for a step: the retry (at `retry_at`), or giving up, or the
        model call that reads a failed tool's result (soon after it was written)."""
        if self.retryable and self.retry_at is not None:
            return self.retry_at
        return written + UNANSWERED_AFTER


class UnknownEvent(Event):
    """A message of a type this code does not know: kept as-is, skipped by projections."""

    type_name: str
    data: dict[str, Any]


class Metadata(BaseModel):
    """Correlation, causation, actor and trace context of one event."""

    model_config = ConfigDict(
        frozen=True, extra="allow", alias_generator=to_camel, populate_by_name=True
    )

    correlation_stream_name: str | None = None
    causation_message_stream_name: str | None = None
    causation_message_position: int | None = None
    causation_message_global_position: int | None = None
    user_id: str | None = None
    turn_id: str | None = None
    step_id: str | None = None
    traceparent: str | None = None
    schema_version: int | None = None

    def follow(self, previous: Recorded[Event]) -> Metadata:
        """Metadata for an event caused by `previous`: same correlation, user, turn and trace."""
        prior = previous.metadata
        return self.model_copy(
            update={
                "correlation_stream_name": prior.correlation_stream_name or previous.stream_name,
                "causation_message_stream_name": previous.stream_name,
                "causation_message_position": previous.position,
                "causation_message_global_position": previous.global_position,
                "user_id": self.user_id or prior.user_id,
                "turn_id": self.turn_id or prior.turn_id,
                "traceparent": self.traceparent or prior.traceparent,
            }
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


E = TypeVar("E", bound=Event, covariant=True)


class Recorded(Generic[E]):
    """An event as stored: its payload plus where and when Message DB put it.

    The metadata may be handed over as JSON text and is then parsed on first use: folding a
    long thread reads the metadata of almost no event, so it should not pay for all of them.
    Treat instances as immutable.
    """

    __slots__ = ("_metadata", "event", "global_position", "id", "position", "stream_name", "time")

    def __init__(
        self,
        id: str,
        stream_name: str,
        position: int,
        global_position: int,
        time: datetime,
        event: E,
        metadata: Metadata | str | None,
    ) -> None:
        self.id = id
        self.stream_name = stream_name
        self.position = position
        self.global_position = global_position
        self.time = time
        self.event = event
        self._metadata: Metadata | str | None = metadata

    @property
    def metadata(self) -> Metadata:
        raw = self._metadata
        if isinstance(raw, Metadata):
            return raw
        parsed = parse_metadata(raw)
        self._metadata = parsed
        return parsed

    @property
    def type(self) -> str:
        event = self.event
        if isinstance(event, UnknownEvent):
            return event.type_name
        return event.type

    def _key(self) -> tuple[object, ...]:
        return (
            self.id,
            self.stream_name,
            self.position,
            self.global_position,
            self.time,
            self.event,
            self.metadata,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Recorded):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.id, self.stream_name, self.position))

    def __repr__(self) -> str:
        return (
            f"Recorded(id={self.id!r}, stream_name={self.stream_name!r}, "
            f"position={self.position}, global_position={self.global_position}, "
            f"time={self.time!r}, event={self.event!r}, metadata={self.metadata!r})"
        )


_EMPTY_METADATA = Metadata()


def parse_metadata(text: str | None) -> Metadata:
    """Metadata from stored JSON text; anything unreadable reads as empty metadata."""
    if text is None:
        return _EMPTY_METADATA
    try:
        return Metadata.model_validate_json(text)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return _EMPTY_METADATA
