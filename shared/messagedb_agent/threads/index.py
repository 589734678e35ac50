"""A user's threads: an event-sourced index (`userThreads-<user>`) plus each thread's head.

The index is append-only (one `ThreadOpened` per thread, a `ThreadArchived` each time the
thread's events leave for the archive: threads/archive.py); the listing orders threads by the
time of their newest event, read for all of them in one round trip, and pages with an opaque
cursor (base64 of the last item's sort key), so a page is stable while threads move on.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from messagedb_agent.events import Metadata, ThreadOpened, from_message, from_messages, to_message
from messagedb_agent.events.ids import message_id
from messagedb_agent.events.index import ThreadArchived
from messagedb_agent.projections.session_state import project_session_state
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.errors import DuplicateMessageError
from messagedb_agent.store.message import NewMessage

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

INDEX_CATEGORY = "userThreads"


def user_stream_id(user: str) -> str:
    """The user id itself when it is a valid stream id, else `~` and a SHA-256 prefix of it."""
    return names.entity_id(INDEX_CATEGORY, user)


def index_stream(user: str) -> str:
    return names.build(INDEX_CATEGORY, user_stream_id(user))


def index_entry(
    user: str, thread_id: str, stream: str, title: str | None
) -> tuple[str, NewMessage]:
    """The index event for a new thread, with an id derived from the thread (written once)."""
    message = to_message(
        ThreadOpened(thread_id=thread_id, stream_name=stream, title=title),
        Metadata(user_id=user, correlation_stream_name=stream),
        id=message_id(stream, "indexed"),
    )
    return index_stream(user), message


def record_in_index(
    store: MessageStore, user: str, thread_id: str, stream: str, title: str | None
) -> None:
    index, message = index_entry(user, thread_id, stream, title)
    with contextlib.suppress(DuplicateMessageError):
        store.write_message(message.id, index, message.type, message.data, message.metadata)


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    thread_id: str
    stream_name: str
    title: str | None
    status: str
    created_at: datetime | None
    last_activity_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class ThreadPage:
    items: list[ThreadSummary]
    next_cursor: str | None


class InvalidCursor(ValueError):
    pass


def _encode(item: ThreadSummary) -> str:
    raw = f"{item.last_activity_at.isoformat()}|{item.thread_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, thread_id = raw.split("|", 1)
        return datetime.fromisoformat(moment), thread_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("The page cursor is not valid; start again without one.") from exc


def list_threads(
    store: MessageStore, user: str, *, limit: int = 20, cursor: str | None = None
) -> ThreadPage:
    """The user's threads, newest activity first.

    Two round trips whatever the number of threads: the index stream, then every thread's
    first messages and head together (`stream_ends`).
    """
    after = _decode(cursor) if cursor else None
    opened = [e.event for e in from_messages(store.read_stream(index_stream(user)))]
    entries = {e.stream_name: e for e in opened if isinstance(e, ThreadOpened)}
    archived = {e.stream_name: e for e in opened if isinstance(e, ThreadArchived)}  # newest
    ends = store.stream_ends(list(entries))
    summaries: list[ThreadSummary] = []
    for stream, entry in entries.items():
        if stream not in ends:
            marker = archived.get(stream)
            if marker is not None:  # no rows: listed from its record, the archive unread
                summaries.append(
                    ThreadSummary(
                        thread_id=entry.thread_id,
                        stream_name=stream,
                        title=entry.title or marker.title,
                        status="archived",
                        created_at=marker.created_at,
                        last_activity_at=marker.last_activity_at,
                        version=marker.last_position,
                    )
                )
            continue
        first, last = ends[stream]
        state = project_session_state([*from_messages(first), from_message(last)])
        summaries.append(
            ThreadSummary(
                thread_id=entry.thread_id,
                stream_name=entry.stream_name,
                title=entry.title or state.title,
                status=_status(last.type, state.status),
                created_at=first[0].time if first else None,
                last_activity_at=last.time,
                version=last.position,
            )
        )
    summaries.sort(key=lambda s: (s.last_activity_at, s.thread_id), reverse=True)
    if after is not None:
        summaries = [s for s in summaries if (s.last_activity_at, s.thread_id) < after]
    page = summaries[:limit]
    more = len(summaries) > limit
    return ThreadPage(page, _encode(page[-1]) if more and page else None)


def _status(last_type: str, projected: str) -> str:
    return projected if last_type == "SessionCompleted" else "active"
