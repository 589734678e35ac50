"""A user's thread index (`userThreads-<user>`): one event per thread the user opened."""

from __future__ import annotations

from typing import ClassVar

from messagedb_agent.events.base import Event


class ThreadOpened(Event):
    type: ClassVar[str] = "ThreadOpened"

    thread_id: str
    stream_name: str
    title: str | None = None
