"""Helpers for the archive tests: threads that have settled, and time travel for their events."""

from __future__ import annotations

from datetime import UTC, datetime

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.notification import Notification
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread


def settle(store: MessageStore, settings: Settings, stream: str, position: int) -> None:
    """Run the engine (the offline model) on the thread until it waits for its user."""
    engine = build_engine(settings, store, OfflineModel())
    run_until_idle(engine, Notification(stream_name=stream, position=position), max_wait=10)


def settled_thread(
    store: MessageStore, settings: Settings, owner: str, message: str = "add a task to buy milk"
) -> tuple[str, str]:
    """(thread id, stream) of a new thread whose turn the engine has answered."""
    appended = start_thread(
        store,
        owner=owner,
        message=message,
        now=datetime.now(UTC),
        shards=settings.threads.thread_shards,
    )
    settle(store, settings, appended.stream_name, appended.position)
    return appended.thread_id, appended.stream_name


def backdate(store: MessageStore, *streams: str, days: int = 40) -> None:
    """Make the streams' events `days` older, as if the threads had sat idle since."""
    with store.connection() as conn:
        conn.execute(
            "UPDATE message_store.messages SET time = time - make_interval(days => %s)"
            " WHERE stream_name = ANY(%s)",
            (days, list(streams)),
        )


def rows(store: MessageStore, stream: str) -> list[tuple[str, int, str, datetime]]:
    """(id, position, type, time) of every message of the stream, in order."""
    with store.connection() as conn:
        found = conn.execute(
            "SELECT id::text, position, type, time FROM message_store.messages"
            " WHERE stream_name = %s ORDER BY position",
            (stream,),
        ).fetchall()
    return [(str(a), int(b), str(c), d) for a, b, c, d in found]
