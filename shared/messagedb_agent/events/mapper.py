"""The only place events become Message DB rows and rows become events.

Reading never fails on content: an unknown type, or a payload that no longer validates, comes
back as an `UnknownEvent` that projections skip. Older schema versions are upcast on read by
the functions registered in `UPCASTERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from messagedb_agent.events.base import Event, Metadata, Recorded, UnknownEvent, parse_metadata
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


def to_messages(events: Sequence[tuple[Event, str, Metadata]]) -> list[NewMessage]:
    """`(event, message id, metadata)` triples as rows; metadata that several events share is
    rendered once (a step's batch shares it)."""
    rendered: dict[int, dict[str, Any]] = {}
    messages: list[NewMessage] = []
    for event, id_, metadata in events:
        shared = rendered.get(id(metadata))
        if shared is None:
            shared = rendered[id(metadata)] = metadata.to_json()
        meta = {**shared, "schemaVersion": event.schema_version}
        data = event.model_dump(mode="json")
        messages.append(NewMessage(type=event.type, data=data, metadata=meta, id=id_))
    return messages


def from_message(message: MessageData) -> Recorded[Event]:
    text = _data_text(message)
    cls = Event.registry.get(message.type)
    event: Event | None = None
    metadata: Metadata | str | None
    try:
        metadata = message.metadata_json  # parsed by Recorded when first needed
    except TypeError:  # a row built in memory holding values JSON cannot express
        metadata = None
    if cls is not None and cls is not UnknownEvent and cls.schema_version > 1:
        metadata = parse_metadata(metadata)  # its schemaVersion picks the upcasters
        event = _known(cls, message.type, metadata.schema_version or 1, text)
    elif cls is not None and cls is not UnknownEvent:
        event = _known(cls, message.type, cls.schema_version, text)
    return Recorded(
        id=message.id,
        stream_name=message.stream_name,
        position=message.position,
        global_position=message.global_position,
        time=message.time,
        event=event or _unknown(message.type, text),
        metadata=metadata,
    )


def _data_text(message: MessageData) -> str:
    """The payload as JSON text, taken before anything decodes it, so every path sees it whole."""
    try:
        text = message.data_json
    except TypeError:  # a row built in memory holding values JSON cannot express
        return "null"
    return "{}" if text is None else text


def _known(cls: type[Event], type_name: str, version: int, text: str) -> Event | None:
    """The typed event, or None when the payload does not fit `cls` (even after upcasting)."""
    try:
        if version >= cls.schema_version:
            return cls.model_validate_json(text)  # pydantic parses the JSON text itself
        return cls.model_validate(_upcast(type_name, version, cls, orjson.loads(text)))
    except (ValidationError, ValueError, _UpcastError):
        return None


class _UpcastError(Exception):
    """An upcaster could not read an old payload: the message is unreadable, not the stream."""


def _upcast(type_name: str, version: int, cls: type[Event], data: Any) -> Any:
    while version < cls.schema_version:
        step = UPCASTERS.get((type_name, version))
        if step is None:
            break
        try:
            data = step(data)
        except Exception as exc:  # an upcaster is written for well-formed old payloads only
            raise _UpcastError(f"{type_name} v{version}: {exc!r}") from exc
        version += 1
    return data


def _unknown(type_name: str, text: str) -> UnknownEvent:
    try:
        data = orjson.loads(text)
    except ValueError:
        data = {}
    return UnknownEvent(
        type_name=type_name, data=data if isinstance(data, dict) else {"value": data}
    )


def from_messages(messages: Iterable[MessageData]) -> list[Recorded[Event]]:
    return [from_message(m) for m in messages]
