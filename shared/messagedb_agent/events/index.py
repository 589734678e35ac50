"""A user's thread index (`userThreads-<user>`): one event per thread the user opened."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from messagedb_agent.events.base import Event


class ThreadOpened(Event):
    type: ClassVar[str] = "ThreadOpened"

    thread_id: str
    stream_name: str
    title: str | None = None


class ThreadArchived(Event):
    """The thread's events were exported to `url` and then deleted from Message DB.

    Written to the owner's index before the delete, so a thread with no rows can always be
    found and restored; the export's `sha256` and `events` count are checked again when it is
    read back. The thread's own fields let the index list it without reading the export.
    """

    type: ClassVar[str] = "ThreadArchived"

    thread_id: str
    stream_name: str
    url: str
    events: int
    sha256: str
    last_position: int
    last_id: str
    title: str | None = None
    status: str = "archived"
    created_at: datetime | None = None
    last_activity_at: datetime
