"""New threads land in their shard; threads written before sharding are found where they are."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from tests.threads.legacy import write_legacy_thread

from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import (
    add_message,
    fork_thread,
    request_termination,
    resolve_thread,
    start_thread,
)
from messagedb_agent.threads.errors import ThreadNotFound
from messagedb_agent.threads.index import list_threads

NOW = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.fixture
def owner() -> str:
    return f"shards-{uuid.uuid4().hex[:8]}"


def test_a_new_thread_is_written_to_the_shard_its_id_names(store: MessageStore, owner: str) -> None:
    started = [start_thread(store, owner=owner, message="hi", now=NOW, shards=4) for _ in range(12)]

    for appended in started:
        shard = names.shard_of(appended.thread_id)
        assert shard < 4
        assert appended.stream_name == f"thread_{shard:02x}-{appended.thread_id}"
        assert store.stream_version(appended.stream_name) == 1
        assert store.stream_version(names.legacy_thread_stream(appended.thread_id)) is None


def test_one_shard_puts_every_new_thread_in_thread_00(store: MessageStore, owner: str) -> None:
    appended = start_thread(store, owner=owner, message="hi", now=NOW, shards=1)

    assert appended.stream_name.startswith("thread_00-")


def test_a_retried_start_finds_its_sharded_thread_again(store: MessageStore, owner: str) -> None:
    first = start_thread(store, owner=owner, message="hi", now=NOW, idempotency_key="k1")
    again = start_thread(store, owner=owner, message="hi", now=NOW, idempotency_key="k1")

    assert (again.thread_id, again.stream_name, again.created) == (
        first.thread_id,
        first.stream_name,
        False,
    )


def test_a_legacy_thread_is_resolved_added_to_ended_and_forked(
    store: MessageStore, owner: str
) -> None:
    thread_id, legacy = write_legacy_thread(store, owner, "from the old days")

    assert resolve_thread(store, thread_id, owner) == (thread_id, legacy)
    assert resolve_thread(store, legacy, owner) == (thread_id, legacy)
    added = add_message(store, thread_id, owner=owner, message="still here?", now=NOW)
    assert (added.stream_name, added.position) == (legacy, 2)
    forked = fork_thread(store, thread_id, owner=owner, at=2, shards=8)
    assert forked.stream_name == names.thread_stream(forked.thread_id)  # a fork is new: sharded
    ended = request_termination(store, thread_id, owner=owner)
    assert ended.stream_name == legacy
    listed = {t.thread_id: t.stream_name for t in list_threads(store, owner).items}
    assert listed == {thread_id: legacy, forked.thread_id: forked.stream_name}


def test_another_users_thread_is_not_found_in_either_place(store: MessageStore, owner: str) -> None:
    legacy_id, _ = write_legacy_thread(store, owner, "mine")
    sharded = start_thread(store, owner=owner, message="mine too", now=NOW)

    for thread in (legacy_id, sharded.thread_id, sharded.stream_name):
        with pytest.raises(ThreadNotFound):
            resolve_thread(store, thread, "someone-else")


@pytest.mark.parametrize(
    "thread",
    [
        str(uuid.uuid4()),
        "thread_0b-0a3c1f00-0000-4000-8000-000000000001",  # the wrong shard for the id
        "thread_00",
        "not-a-thread",
    ],
)
def test_a_thread_that_is_nowhere_is_not_found(
    store: MessageStore, owner: str, thread: str
) -> None:
    with pytest.raises(ThreadNotFound):
        resolve_thread(store, thread, owner)
