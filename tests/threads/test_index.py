"""The thread list costs the same round trips for 3 threads as for 30."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from tests.threads.legacy import write_legacy_thread

from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message, start_thread
from messagedb_agent.threads.index import list_threads

NOW = datetime(2026, 11, 30, tzinfo=UTC)


class CountingStore:
    """The store, counting which of its methods are called."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return found(*args, **kwargs)

        return counted


@pytest.mark.parametrize("threads", [3, 30])
def test_listing_threads_is_two_reads_however_many_there_are(
    store: MessageStore, threads: int
) -> None:
    owner = f"index-{uuid.uuid4().hex[:8]}"
    for n in range(threads):
        start_thread(store, owner=owner, message=f"thread {n}", now=NOW)
    counting = CountingStore(store)

    page = list_threads(cast(MessageStore, counting), owner, limit=2)

    assert counting.calls == Counter({"read_stream": 1, "stream_ends": 1})
    assert len(page.items) == 2
    assert page.next_cursor is not None


def test_the_list_is_newest_activity_first_with_titles_and_versions(store: MessageStore) -> None:
    owner = f"index-{uuid.uuid4().hex[:8]}"
    old_id, _ = write_legacy_thread(store, owner, "from before")
    first = start_thread(store, owner=owner, message="first", now=NOW)
    second = start_thread(store, owner=owner, message="second", now=NOW, title="Named")
    add_message(store, first.thread_id, owner=owner, message="again", now=NOW)

    items = list_threads(store, owner).items

    assert [i.thread_id for i in items] == [first.thread_id, second.thread_id, old_id]
    assert [i.title for i in items] == ["first", "Named", "from before"]
    assert [i.version for i in items] == [2, 1, 1]
    assert all(i.created_at is not None for i in items)


def test_stream_ends_skips_streams_without_messages(store: MessageStore) -> None:
    owner = f"index-{uuid.uuid4().hex[:8]}"
    thread = start_thread(store, owner=owner, message="hi", now=NOW)
    empty = f"thread_00-{uuid.UUID(int=0)}"

    ends = store.stream_ends([thread.stream_name, empty], first=1)

    assert list(ends) == [thread.stream_name]
    first, last = ends[thread.stream_name]
    assert [m.type for m in first] == ["SessionStarted"]
    assert (last.type, last.position) == ("UserMessageAdded", 1)
