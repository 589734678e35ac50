"""A warm instance's cached thread views: only the tail is read, and nothing stale is kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, text

from messagedb_agent.engine.cache import ViewCache
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message
from messagedb_agent.threads.reading import read_thread


class CountingStore:
    """The real store, counting the rows each read_stream call returns."""

    def __init__(self, store: MessageStore) -> None:
        self._store = store
        self.rows_read: list[int] = []

    def read_stream(self, stream: str, position: int = 0, batch_size: int = 1000) -> Any:
        rows = self._store.read_stream(stream, position, batch_size)
        self.rows_read.append(len(rows))
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def warm_engine(
    store: Any, model: ScriptedModel, tools: EchoTools, clock: Clock, cache: ViewCache
) -> Engine:
    return Engine(
        store, model, tools, EngineConfig(model="m"), clock=clock, worker="w", views=cache
    )


def test_the_next_turn_reads_only_the_new_events(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    counting = CountingStore(store)
    cache = ViewCache()
    engine = warm_engine(counting, model, tools, clock, cache)
    model.script = [calls(("add", {"a": 1, "b": 2})), text("3"), text("again")]
    thread = new_thread(store)
    engine.advance(thread.notification, max_steps=50)
    first_read = counting.rows_read[0]
    assert len(cache) == 1
    appended = add_message(
        store, thread.thread_id, owner="alice", message="more", now=datetime.now(UTC)
    )
    result = engine.advance(appended.notification, max_steps=50)
    assert result.reply == "again"
    assert counting.rows_read[-1] == 1  # only the new user message
    assert first_read == 2
    cold = read_thread(store, thread.stream_name)
    assert [e.type for e in cold][-3:] == [
        "UserMessageAdded",
        "LLMCallRequested",
        "LLMResponseReceived",
    ]


def test_warm_and_cold_engines_write_the_same_thread(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    script = [calls(("add", {"a": 1, "b": 2})), text("3"), calls(("whoami", {})), text("alice")]
    shapes = []
    for cache in (None, ViewCache()):
        model.script = list(script)
        engine = Engine(
            store, model, tools, EngineConfig(model="m"), clock=clock, worker="w", views=cache
        )
        thread = new_thread(store)
        run_until_idle(engine, thread.notification, chain=50)
        appended = add_message(
            store, thread.thread_id, owner="alice", message="who", now=datetime.now(UTC)
        )
        run_until_idle(engine, appended.notification, chain=50)
        shapes.append([(e.type, e.position) for e in read_thread(store, thread.stream_name)])
    assert shapes[0] == shapes[1]


class Crash(BaseException):
    pass


def test_a_view_is_not_kept_when_the_worker_dies_mid_step(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    cache = ViewCache()
    engine = warm_engine(store, model, tools, clock, cache)
    thread = new_thread(store)
    model.script = [text("first")]
    engine.advance(thread.notification, max_steps=50)
    assert len(cache) == 1

    def dead(*args: object, **kwargs: object) -> None:
        raise Crash

    appended = add_message(
        store, thread.thread_id, owner="alice", message="x", now=datetime.now(UTC)
    )
    original = engine.llm.call
    engine.llm.call = dead  # type: ignore[method-assign]
    with pytest.raises(Crash):
        engine.advance(appended.notification, max_steps=50)
    assert len(cache) == 0
    engine.llm.call = original  # type: ignore[method-assign]
    clock.advance(engine.config.llm_lease.total_seconds() + 1)
    head = Notification(stream_name=thread.stream_name, position=appended.position + 1)
    model.script = [text("second")]
    assert engine.advance(head, max_steps=50).reply == "second"


def test_the_cache_is_bounded_by_events_and_evicts_the_least_recently_used(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    cache = ViewCache(max_events=10)
    engine = warm_engine(store, model, tools, clock, cache)
    streams = []
    for _ in range(3):
        thread = new_thread(store)
        engine.advance(thread.notification, max_steps=50)  # 4 events each
        streams.append(thread.stream_name)
    assert len(cache) == 2
    assert cache.take(streams[0]) is None
    assert cache.take(streams[2]) is not None
