"""The only place events become Message DB rows and rows become events.

Reading never fails on content: an unknown type, or a payload that no longer validates, comes
back as an `UnknownEvent` that projections skip. Older schema versions are upcast on read by
the functions registered in `UPCASTERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from messagedb_agent.events.base import Event, Metadata, Recorded, UnknownEvent
from messagedb_agent.store.message import MessageData, NewMessage

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, version it reads) -> function producing the next version's payload.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(func: Upcaster) -> Upcaster:
        UPCASTERS[(type_name, from_version)] = func
        return func

    return register


def to_message(event: Event, metadata: Metadata, id: str | None = None) -> NewMessage:
    meta = metadata.to_json()
    meta["schemaVersion"] = event.schema_version
    return NewMessage(type=event.type, data=event.model_dump(mode="json"), metadata=meta, id=id)


def from_message(message: MessageData) -> Recorded[Event]:
    raw_meta = message.metadata or {}
    try:
        metadata = Metadata.model_validate(raw_meta)
    except ValidationError:
        metadata = Metadata()
    cls = Event.registry.get(message.type)
    event: Event
    if cls is None or cls is UnknownEvent:
        event = UnknownEvent(type_name=message.type, data=message.data)
    else:
        data = message.data
        version = metadata.schema_version or 1
        while version < cls.schema_version:
            step = UPCASTERS.get((message.type, version))
            if step is None:
                break
            data = step(data)
            version += 1
        try:
            event = cls.model_validate(data)
        except ValidationError:
            event = UnknownEvent(type_name=message.type, data=message.data)
    return Recorded(
        id=message.id,
        stream_name=message.stream_name,
        position=message.position,
        global_position=message.global_position,
        time=message.time,
        event=event,
        metadata=metadata,
    )


def from_messages(messages: Iterable[MessageData]) -> list[Recorded[Event]]:
    return [from_message(m) for m in messages]
