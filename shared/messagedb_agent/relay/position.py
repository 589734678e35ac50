"""The relay's stored state, as Eventide stores a consumer position: a `Recorded` event.

It lives in `thread:position-relay` (category `thread:position`, so reading the `thread`
category never sees it). Besides the global position, it keeps the streams whose last event
was a claim or a backoff, with the time they become due, so that a crashed worker's step is
re-announced after its lease expires even though the category has moved on.
"""

from __future__ import annotations

from messagedb_agent.events import Metadata, PositionRecorded, from_message, to_message
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import ConcurrencyError

POSITION_STREAM = names.build(names.THREAD_CATEGORY, "relay", types=("position",))


def get(store: MessageStore, stream: str = POSITION_STREAM) -> tuple[PositionRecorded, int | None]:
    """The last recorded state and the position stream's version (None when never written)."""
    last = store.get_last_stream_message(stream)
    if last is None:
        return PositionRecorded(position=0), None
    event = from_message(last).event
    if not isinstance(event, PositionRecorded):
        return PositionRecorded(position=0), last.position
    return event, last.position


def put(
    store: MessageStore,
    state: PositionRecorded,
    expected_version: int | None,
    stream: str = POSITION_STREAM,
) -> bool:
    """Record the state; False when another relay recorded first (its sweep stands)."""
    message = to_message(state, Metadata())
    try:
        store.write_message(
            None,
            stream,
            message.type,
            message.data,
            message.metadata,
            expected_version if expected_version is not None else -1,
        )
    except ConcurrencyError:
        return False
    return True
