"""The database wakes whoever waits on a thread when a reply is appended, through LISTEN."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from messagedb_agent.postgres.agent_schema import ANNOUNCED_TYPES, THREAD_EVENTS_CHANNEL
from messagedb_agent.projections.anchors import WAKE_TYPES
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.signals import StreamSignals


@pytest.fixture
def signals(store: MessageStore) -> Iterator[StreamSignals]:
    listening = StreamSignals(store.dedicated_connection, THREAD_EVENTS_CHANNEL).start()
    yield listening
    listening.close()


def test_the_database_announces_exactly_the_types_that_end_a_wait_for_a_reply() -> None:
    assert set(ANNOUNCED_TYPES) == WAKE_TYPES


def _stream() -> str:
    return f"thread_00-{uuid.UUID(int=uuid.uuid4().int & ~(0xFF << 120))}"


def test_a_reply_appended_wakes_the_watcher_of_its_stream_only(
    store: MessageStore, signals: StreamSignals
) -> None:
    mine, other = _stream(), _stream()
    with signals.watch(mine) as watch, signals.watch(other) as elsewhere:
        assert watch.listening
        store.write_message(None, mine, "LLMResponseReceived", {"response_text": "hi"})

        assert watch.wait(5)
        assert not elsewhere.wait(0.3)


def test_events_that_cannot_be_a_reply_wake_nobody(
    store: MessageStore, signals: StreamSignals
) -> None:
    stream = _stream()
    with signals.watch(stream) as watch:
        store.write_message(None, stream, "UserMessageAdded", {"message": "hi"})
        store.write_message(None, stream, "LLMCallRequested", {"step_id": "s"})

        assert not watch.wait(0.5)


def test_a_lost_listener_reconnects_and_wakes_waiters_meanwhile(
    store: MessageStore, signals: StreamSignals
) -> None:
    stream = _stream()
    with signals.watch(stream) as watch:
        _terminate_listeners(store)
        assert watch.wait(5)  # told to re-read while the listener was gone
        deadline = time.monotonic() + 10
        while not signals.listening and time.monotonic() < deadline:
            time.sleep(0.05)
        assert signals.listening
        watch.wait(0)  # forget any earlier wake-up
        store.write_message(None, stream, "SessionCompleted", {"completion_reason": "x"})

        assert watch.wait(5)


def test_a_notification_sent_before_the_wait_is_not_missed(
    store: MessageStore, signals: StreamSignals
) -> None:
    stream = _stream()
    with signals.watch(stream) as watch:
        writer = threading.Thread(
            target=store.write_message,
            args=(None, stream, "LLMResponseReceived", {"response_text": "quick"}),
        )
        writer.start()
        writer.join()
        time.sleep(0.2)  # the notification lands before the waiter starts waiting

        assert watch.wait(2)


def test_a_listener_whose_store_was_closed_stops_instead_of_reconnecting(
    database_url: str, store: MessageStore
) -> None:
    own = MessageStore(database_url).open()
    signals = StreamSignals(
        own.dedicated_connection, THREAD_EVENTS_CHANNEL, stop_when=lambda: own.closed
    ).start()
    assert signals.listening
    own.close()

    _terminate_listeners(store)

    deadline = time.monotonic() + 5
    while not signals.stopped and time.monotonic() < deadline:
        time.sleep(0.05)
    assert signals.stopped


def _terminate_listeners(store: MessageStore) -> None:
    with store.pool.connection() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query = %s AND pid <> pg_backend_pid()",
            (f"LISTEN {THREAD_EVENTS_CHANNEL}",),
        )
