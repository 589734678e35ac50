"""A thread as the release before sharding wrote it: `thread-<uuid>`, indexed for its owner."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from messagedb_agent.events import Metadata, SessionStarted, UserMessageAdded, to_message
from messagedb_agent.events.ids import message_id
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import legacy_thread_stream
from messagedb_agent.threads.index import record_in_index


def write_legacy_thread(store: MessageStore, owner: str, message: str) -> tuple[str, str]:
    """(thread id, stream) of a new thread in the legacy `thread` category, with one message."""
    thread_id = str(uuid.uuid4())
    stream = legacy_thread_stream(thread_id)
    meta = Metadata(correlation_stream_name=stream, user_id=owner)
    started = SessionStarted(thread_id=thread_id, owner=owner, title=message[:80])
    said = UserMessageAdded(message=message, timestamp=datetime.now(UTC))
    store.write_messages(
        stream,
        [
            to_message(started, meta, id=message_id(stream, "started")),
            to_message(said, meta, id=message_id(stream, "message-0")),
        ],
        expected_version=-1,
    )
    record_in_index(store, owner, thread_id, stream, message[:80])
    return thread_id, stream
