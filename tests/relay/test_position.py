"""The relay's stored state: recorded by optimistic concurrency, so it never goes backwards.

Each test uses a position stream of its own, so no other relay (or test) records into it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from messagedb_agent.events import PositionRecorded
from messagedb_agent.relay import position as position_store
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore

DUE = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


def new_position_stream() -> str:
    return names.build(names.THREAD_CATEGORY, f"relay{uuid.uuid4().hex}", types=("position",))


def test_a_relay_that_never_recorded_starts_from_the_beginning(store: MessageStore) -> None:
    assert position_store.get(store, new_position_stream()) == (PositionRecorded(position=0), None)


def test_the_position_and_the_watch_read_back_as_recorded(store: MessageStore) -> None:
    stream = new_position_stream()
    state = PositionRecorded(position=42, watch={f"thread-{uuid.uuid4()}": DUE})

    assert position_store.put(store, state, None, stream)

    assert position_store.get(store, stream) == (state, 0)


def test_of_two_relays_that_found_no_state_only_the_first_records(store: MessageStore) -> None:
    stream = new_position_stream()
    first, second = PositionRecorded(position=20), PositionRecorded(position=10)

    assert position_store.put(store, first, None, stream)
    assert not position_store.put(store, second, None, stream)

    assert position_store.get(store, stream) == (first, 0)


def test_a_state_recorded_from_a_stale_version_is_refused_and_the_newer_one_stands(
    store: MessageStore,
) -> None:
    stream = new_position_stream()
    assert position_store.put(store, PositionRecorded(position=10), None, stream)
    _, version = position_store.get(store, stream)
    newer, stale = PositionRecorded(position=30), PositionRecorded(position=20)

    assert position_store.put(store, newer, version, stream)
    assert not position_store.put(store, stale, version, stream)

    assert position_store.get(store, stream) == (newer, 1)
