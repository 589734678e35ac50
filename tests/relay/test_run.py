"""A relay pass over every thread category: shards, cursors, the budget, the lag, the loop.

Runs against the real Message DB. Every test first catches the relay up with whatever earlier
tests wrote, then writes its own streams, so only its own announcements count.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from tests.engine.doubles import new_thread
from tests.publishers import RecordingPublisher

from messagedb_agent.events import Metadata, UserMessageAdded, to_message
from messagedb_agent.notification import Notification
from messagedb_agent.relay import position as position_store
from messagedb_agent.relay.run import lag, relay, relay_loop, relay_once
from messagedb_agent.settings import Settings
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
CATEGORIES = names.thread_categories(names.DEFAULT_THREAD_SHARDS)


def _heads(store: MessageStore, streams: list[str]) -> set[Notification]:
    heads = set()
    for stream in streams:
        version = store.stream_version(stream)
        assert version is not None
        heads.add(Notification(stream_name=stream, position=version))
    return heads


def _cursor(store: MessageStore, category: str) -> int:
    return position_store.get(store, position_store.position_stream(category))[0].position


def _recorded_positions(store: MessageStore, category: str) -> list[int]:
    stream = position_store.position_stream(category)
    positions: list[int] = []
    start = 0
    while batch := store.get_stream_messages(stream, start):
        positions += [m.data["position"] for m in batch]
        start = batch[-1].position + 1
    return positions


def _write(store: MessageStore, stream: str, text: str = "hello") -> int:
    message = to_message(UserMessageAdded(message=text), Metadata())
    return store.write_message(None, stream, message.type, message.data, message.metadata)


def _in_shard(shard: int) -> str:
    """A new canonical thread stream in shard `shard` (its id's first byte is the shard)."""
    raw = bytearray(uuid.uuid4().bytes)
    raw[0] = shard
    return names.thread_stream(uuid.UUID(bytes=bytes(raw)))


def _catch_up(store: MessageStore) -> None:
    relay_once(store, RecordingPublisher(), NOW, budget_seconds=600)


# -- shards ----------------------------------------------------------------------------------


def test_a_pass_announces_legacy_and_sharded_thread_streams_alike(store: MessageStore) -> None:
    _catch_up(store)
    legacy = names.legacy_thread_stream(uuid.uuid4())
    sharded = [_in_shard(0), _in_shard(10), _in_shard(15)]
    assert [names.parse(s).category_name for s in sharded] == [
        "thread_00",
        "thread_0a",
        "thread_0f",
    ]
    for stream in [legacy, *sharded]:
        _write(store, stream)
    publisher = RecordingPublisher()

    report = relay_once(store, publisher, NOW)

    assert _heads(store, [legacy, *sharded]) <= set(publisher.published)
    assert {s.category for s in report.shards} == set(CATEGORIES)


def test_each_category_keeps_its_own_cursor_and_the_legacy_one_keeps_its_stream(
    store: MessageStore,
) -> None:
    _catch_up(store)
    assert position_store.POSITION_STREAM == "thread:position-relay"
    before = {c: _cursor(store, c) for c in CATEGORIES}
    stream = _in_shard(3)
    _write(store, stream)
    last = store.get_last_stream_message(stream)
    assert last is not None

    report = relay_once(store, RecordingPublisher(), NOW)

    after = {c: _cursor(store, c) for c in CATEGORIES}
    assert after["thread_03"] == last.global_position
    assert {c for c in CATEGORIES if after[c] != before[c]} == {"thread_03"}
    by_category = {s.category: s for s in report.shards}
    assert by_category["thread_03"].position == last.global_position
    assert by_category["thread_03"].read == 1
    assert report.position >= last.global_position


def test_threads_started_by_the_api_are_announced_from_their_shard(store: MessageStore) -> None:
    _catch_up(store)
    streams = [
        start_thread(store, owner="alice", message=f"message {i}", now=NOW).stream_name
        for i in range(3)
    ]
    publisher = RecordingPublisher()

    report = relay_once(store, publisher, NOW)

    assert _heads(store, streams) <= set(publisher.published)
    assert all(n.position == 1 for n in publisher.published if n.stream_name in streams)
    assert report.published == len(publisher.published)
    again = RecordingPublisher()
    relay_once(store, again, NOW)
    assert not {n.stream_name for n in again.published} & set(streams)


# -- catching up, within the budget ------------------------------------------------------------


def test_a_backlog_of_many_full_batches_is_caught_up_in_one_pass(store: MessageStore) -> None:
    """No fixed number of batches: a shard is swept while batches come back full."""
    _catch_up(store)
    streams = [_in_shard(5) for _ in range(60)]
    for stream in streams:
        _write(store, stream)
    publisher = RecordingPublisher()

    report = relay_once(store, publisher, NOW, batch_size=4)

    shard = next(s for s in report.shards if s.category == "thread_05")
    assert shard.batches >= 15
    assert shard.read == 60
    assert (shard.lag_messages, shard.lag_seconds, shard.caught_up) == (0, 0.0, True)
    assert _heads(store, streams) <= set(publisher.published)


def test_a_pass_whose_budget_runs_out_stops_and_reports_the_lag_it_leaves(
    store: MessageStore,
) -> None:
    _catch_up(store)
    streams = [_in_shard(6) for _ in range(10)]
    for stream in streams:
        _write(store, stream)
    last = store.get_last_stream_message(streams[-1])
    assert last is not None
    ticks = iter(range(1_000_000))

    report = relay_once(
        store,
        RecordingPublisher(),
        NOW,
        batch_size=2,
        budget_seconds=2.5,
        clock=lambda: next(ticks),
    )

    shard = next(s for s in report.shards if s.category == "thread_06")
    assert shard.read < 10
    assert not shard.caught_up
    assert not report.caught_up
    assert shard.lag_messages == last.global_position - shard.position > 0
    assert shard.lag_seconds >= 0
    assert report.lag_messages >= shard.lag_messages
    answer = report.as_json()
    assert answer["lag"]["messages"] == report.lag_messages
    assert answer["lag"]["shards"]["thread_06"]["lag_messages"] == shard.lag_messages

    rest = relay_once(store, RecordingPublisher(), NOW, batch_size=2)
    assert rest.caught_up
    assert rest.lag_messages == 0


def test_the_lag_in_seconds_is_the_age_of_the_oldest_unread_message(store: MessageStore) -> None:
    _catch_up(store)
    stream = _in_shard(7)
    _write(store, stream)
    with store.connection() as conn:
        conn.execute(
            "UPDATE message_store.messages SET time = time - interval '90 seconds' "
            "WHERE stream_name = %s",
            (stream,),
        )
    messages, seconds = lag(store, "thread_07", _cursor(store, "thread_07"))

    assert messages >= 1
    assert 89 <= seconds < 200


# -- races and failures ----------------------------------------------------------------------


def test_two_concurrent_runs_publish_every_head_and_never_move_a_cursor_back(
    store: MessageStore,
) -> None:
    _catch_up(store)
    before = {c: len(_recorded_positions(store, c)) for c in CATEGORIES}
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
        relay_once(store, publisher, NOW, batch_size=3)

    workers = [threading.Thread(target=write)] + [
        threading.Thread(target=relay, args=(p,)) for p in publishers
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    published = set(publishers[0].published) | set(publishers[1].published)
    assert _heads(store, streams) <= published
    for category in CATEGORIES:
        positions = _recorded_positions(store, category)[before[category] :]
        assert positions == sorted(positions), category


class UnavailablePublisher:
    """Pub/Sub refusing the batch: the run must fail before it records anything."""

    def publish(self, notifications: Sequence[Notification]) -> None:
        raise ConnectionError("Pub/Sub is unavailable")


def test_a_run_that_fails_to_publish_records_nothing_and_the_next_run_announces_again(
    store: MessageStore,
) -> None:
    _catch_up(store)
    before = {c: position_store.get(store, position_store.position_stream(c)) for c in CATEGORIES}
    streams = [new_thread(store, f"message {i}").stream_name for i in range(2)]

    with pytest.raises(ConnectionError):
        relay_once(store, UnavailablePublisher(), NOW)
    after = {c: position_store.get(store, position_store.position_stream(c)) for c in CATEGORIES}
    assert after == before

    again = RecordingPublisher()
    relay_once(store, again, NOW)
    assert _heads(store, streams) <= set(again.published)


def test_a_pass_that_finds_nothing_new_records_nothing(store: MessageStore) -> None:
    """A looping relay passes every few seconds: an idle pass must not grow the position streams."""
    _catch_up(store)
    _catch_up(store)
    before = {c: len(_recorded_positions(store, c)) for c in CATEGORIES}

    relay_once(store, RecordingPublisher(), NOW)

    assert {c: len(_recorded_positions(store, c)) for c in CATEGORIES} == before


# -- the loop --------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_loop_of_zero_is_one_pass(store: MessageStore) -> None:
    _catch_up(store)
    time = FakeTime()

    report = relay_loop(
        store, RecordingPublisher(), loop_seconds=0, clock=time.clock, sleep=time.sleep
    )

    assert report.passes == 1
    assert time.slept == []


def test_a_looping_call_passes_every_tick_until_its_loop_is_used_up(store: MessageStore) -> None:
    """So a lease that runs out between two scheduler calls is taken over within a tick."""
    _catch_up(store)
    time = FakeTime()
    streams: list[str] = []
    publisher = RecordingPublisher()

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        streams.append(_in_shard(9))  # something new arrives between two passes
        _write(store, streams[-1])

    report = relay_loop(
        store, publisher, loop_seconds=10, tick_seconds=2, clock=time.clock, sleep=sleep
    )

    assert report.passes == 5
    assert time.slept == [2, 2, 2, 2]
    assert _heads(store, streams) <= set(publisher.published)
    assert report.as_json()["passes"] == 5


def test_the_relay_function_s_call_sweeps_the_configured_shards_and_loops_as_configured(
    store: MessageStore, settings: Settings
) -> None:
    configured = settings.replace(thread_shards=2, relay_loop_seconds=0.3, relay_tick_seconds=0.1)

    report = relay(store, RecordingPublisher(), configured)

    assert [s.category for s in report.shards] == ["thread", "thread_00", "thread_01"]
    assert report.passes >= 2
    assert relay(store, RecordingPublisher(), configured, NOW).passes == 1  # a test's clock


def test_a_tick_longer_than_the_loop_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="RELAY_TICK_SECONDS"):
        settings.replace(relay_loop_seconds=1, relay_tick_seconds=2)
