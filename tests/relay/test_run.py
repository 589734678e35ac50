from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from tests.engine.doubles import new_thread
from tests.publishers import RecordingPublisher

from messagedb_agent.notification import Notification
from messagedb_agent.relay import position as position_store
from messagedb_agent.relay.run import relay_once
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _heads(store: MessageStore, streams: list[str]) -> set[Notification]:
    heads = set()
    for stream in streams:
        version = store.stream_version(stream)
        assert version is not None
        heads.add(Notification(stream_name=stream, position=version))
    return heads


def _recorded_positions(store: MessageStore) -> list[int]:
    positions: list[int] = []
    start = 0
    while batch := store.get_stream_messages(position_store.POSITION_STREAM, start):
        positions += [m.data["position"] for m in batch]
        start = batch[-1].position + 1
    return positions


def test_a_run_publishes_the_head_of_each_new_stream_and_records_the_position(
    store: MessageStore,
) -> None:
    relay_once(store, RecordingPublisher(), NOW, max_batches=100)  # catch up with other tests
    # written just now: not yet unanswered for long enough to be announced again
    streams = [
        start_thread(store, owner="alice", message=f"message {i}", now=NOW).stream_name
        for i in range(3)
    ]
    last = store.get_last_stream_message(streams[-1])
    assert last is not None
    publisher = RecordingPublisher()

    report = relay_once(store, publisher, NOW, max_batches=100)

    assert _heads(store, streams) <= set(publisher.published)
    assert all(n.position == 1 for n in publisher.published if n.stream_name in streams)
    assert report.published == len(publisher.published)
    assert report.position >= last.global_position
    assert position_store.get(store)[0].position == report.position

    again = RecordingPublisher()
    relay_once(store, again, NOW, max_batches=100)
    assert not {n.stream_name for n in again.published} & set(streams)


def test_a_run_stops_after_max_batches_and_the_next_run_goes_on_from_there(
    store: MessageStore,
) -> None:
    relay_once(store, RecordingPublisher(), NOW, max_batches=100)
    streams = [new_thread(store, f"message {i}").stream_name for i in range(3)]  # 6 messages
    first, second = RecordingPublisher(), RecordingPublisher()

    partial = relay_once(store, first, NOW, max_batches=1, batch_size=2)
    rest = relay_once(store, second, NOW, max_batches=100, batch_size=2)

    assert (partial.batches, partial.read) == (1, 2)
    assert {n.stream_name for n in first.published} == {streams[0]}
    assert rest.position > partial.position
    assert _heads(store, streams) <= set(first.published) | set(second.published)


def test_two_concurrent_runs_publish_every_head_and_never_move_the_position_back(
    store: MessageStore,
) -> None:
    relay_once(store, RecordingPublisher(), NOW, max_batches=100)
    before = len(_recorded_positions(store))
    streams: list[str] = []
    publishers = [RecordingPublisher(), RecordingPublisher()]
    writing = threading.Event()
    together = threading.Barrier(3)

    def write() -> None:
        together.wait(10)
        for i in range(20):
            streams.append(new_thread(store, f"message {i}").stream_name)
        writing.set()

    def relay(publisher: RecordingPublisher) -> None:
        together.wait(10)
        while not writing.is_set():
            relay_once(store, publisher, NOW, max_batches=3, batch_size=3)
        relay_once(store, publisher, NOW, max_batches=100, batch_size=3)

    workers = [threading.Thread(target=write)] + [
        threading.Thread(target=relay, args=(p,)) for p in publishers
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    published = set(publishers[0].published) | set(publishers[1].published)
    assert _heads(store, streams) <= published
    positions = _recorded_positions(store)[before:]
    assert len(positions) > 2
    assert positions == sorted(positions)


class UnavailablePublisher:
    """Pub/Sub refusing the batch: the run must fail before it records anything."""

    def publish(self, notifications: Sequence[Notification]) -> None:
        raise ConnectionError("Pub/Sub is unavailable")


def test_a_run_that_fails_to_publish_records_nothing_and_the_next_run_announces_again(
    store: MessageStore,
) -> None:
    relay_once(store, RecordingPublisher(), NOW, max_batches=100)
    before = position_store.get(store)
    streams = [new_thread(store, f"message {i}").stream_name for i in range(2)]

    with pytest.raises(ConnectionError):
        relay_once(store, UnavailablePublisher(), NOW, max_batches=100)
    assert position_store.get(store) == before

    again = RecordingPublisher()
    relay_once(store, again, NOW, max_batches=100)
    assert _heads(store, streams) <= set(again.published)
