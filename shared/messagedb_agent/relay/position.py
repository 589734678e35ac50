"""The relay's stored state, as Eventide stores a consumer position: a `Recorded` event.

Each thread category has its own: `thread_07:position-relay` for shard 7 (category
`thread_07:position`, so reading the `thread_07` category never sees it), and
`thread:position-relay` for the legacy category, the stream the relay used before threads were
sharded, so a deployment's cursor is kept. Besides the global position, it keeps the streams
whose head may need a step later (a claim, a backoff, a message not answered yet), with the
time to look at them again, so that a crashed worker's step is re-announced after its lease
expires even though the category has moved on.
"""

from __future__ import annotations

from messagedb_agent.events import Metadata, PositionRecorded, from_message, to_message
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import ConcurrencyError


def position_stream(category: str) -> str:
    """`<category>:position-relay`: where the relay records how far it read `category`."""
    return names.build(category, "relay", types=("position",))


POSITION_STREAM = position_stream(names.THREAD_CATEGORY)


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
