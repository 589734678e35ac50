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
    metadata = _metadata(message)
    cls = Event.registry.get(message.type)
    event: Event
    if cls is None or cls is UnknownEvent:
        event = _unknown(message)
    else:
        version = metadata.schema_version or 1
        try:
            if version >= cls.schema_version and (text := message.data_json) is not None:
                event = cls.model_validate_json(text)  # pydantic parses the JSON text itself
            else:
                data = message.data
                while version < cls.schema_version:
                    step = UPCASTERS.get((message.type, version))
                    if step is None:
                        break
                    data = step(data)
                    version += 1
                event = cls.model_validate(data)
        except (ValidationError, ValueError):
            event = _unknown(message)
    return Recorded(
        id=message.id,
        stream_name=message.stream_name,
        position=message.position,
        global_position=message.global_position,
        time=message.time,
        event=event,
        metadata=metadata,
    )


def _metadata(message: MessageData) -> Metadata:
    text = message.metadata_json
    if text is None:
        return _EMPTY_METADATA
    try:
        return Metadata.model_validate_json(text)
    except (ValidationError, ValueError):
        return _EMPTY_METADATA


def _unknown(message: MessageData) -> UnknownEvent:
    try:
        data = message.data
    except ValueError:
        data = {}
    return UnknownEvent(
        type_name=message.type, data=data if isinstance(data, dict) else {"value": data}
    )


_EMPTY_METADATA = Metadata()


def from_messages(messages: Iterable[MessageData]) -> list[Recorded[Event]]:
    return [from_message(m) for m in messages]
