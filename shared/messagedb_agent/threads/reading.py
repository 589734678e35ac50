"""Reading a thread: its events, typed, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from messagedb_agent.events import Event, Recorded, SessionStarted, from_messages

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore


def read_thread(
    store: MessageStore, stream: str, to_position: int | None = None, *, after: int = -1
) -> list[Recorded[Event]]:
    """The thread's events after position `after` (all by default), up to `to_position`."""
    events = from_messages(store.read_stream(stream, after + 1))
    if to_position is not None:
        events = [e for e in events if e.position <= to_position]
    return events


def started_of(store: MessageStore, stream: str) -> dict[str, Any] | None:
    """The SessionStarted data (owner, policies), reading only the first message."""
    first = store.get_stream_messages(stream, 0, 1)
    if not first or first[0].type != SessionStarted.type:
        return None
    return first[0].data


def owner_of(store: MessageStore, stream: str) -> str | None:
    """The owner recorded by SessionStarted, reading only the first message."""
    started = started_of(store, stream)
    owner = started.get("owner") if started is not None else None
    return owner if isinstance(owner, str) else None
