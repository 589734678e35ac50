"""What appending a user message or forking costs: the thread is found once, with its own
policy, and not again when the caller found it already."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import cast

import pytest
from tests.threads.test_index import CountingStore

from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message, find_thread, fork_thread, start_thread
from messagedb_agent.threads.errors import TurnRunning

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_an_enqueued_message_reads_the_first_message_and_the_head_then_writes(
    store: MessageStore,
) -> None:
    owner = f"commands-{uuid.uuid4().hex[:8]}"
    thread = start_thread(store, owner=owner, message="hello", now=NOW)
    counting = CountingStore(store)

    appended = add_message(
        cast(MessageStore, counting), thread.thread_id, owner=owner, message="again", now=NOW
    )

    assert appended.position == 2
    assert counting.calls == Counter(
        {"get_stream_messages": 1, "get_last_stream_message": 1, "write_message": 1}
    )


def test_a_thread_created_with_reject_refuses_while_its_first_turn_runs_by_its_own_policy(
    store: MessageStore,
) -> None:
    owner = f"commands-{uuid.uuid4().hex[:8]}"
    thread = start_thread(store, owner=owner, message="hello", now=NOW, multitask="reject")
    counting = CountingStore(store)

    with pytest.raises(TurnRunning):
        add_message(
            cast(MessageStore, counting), thread.thread_id, owner=owner, message="again", now=NOW
        )

    assert store.stream_version(thread.stream_name) == 1  # nothing appended
    assert counting.calls["get_stream_messages"] == 1  # the owner and the policy, one read
    assert counting.calls["read_stream"] == 1  # is a turn running? the thread, once


def test_a_message_to_a_thread_the_caller_found_reads_only_the_head_then_writes(
    store: MessageStore,
) -> None:
    owner = f"commands-{uuid.uuid4().hex[:8]}"
    thread = start_thread(store, owner=owner, message="hello", now=NOW)
    found = find_thread(store, thread.thread_id, owner)
    counting = CountingStore(store)

    appended = add_message(
        cast(MessageStore, counting), found, owner=owner, message="again", now=NOW
    )

    assert appended.position == 2
    assert counting.calls == Counter({"get_last_stream_message": 1, "write_message": 1})


@pytest.mark.parametrize("given", ["id", "found"])
def test_a_fork_reads_the_history_once_and_the_thread_only_when_not_found_already(
    store: MessageStore, given: str
) -> None:
    owner = f"commands-{uuid.uuid4().hex[:8]}"
    thread = start_thread(store, owner=owner, message="hello", now=NOW)
    source = thread.thread_id if given == "id" else find_thread(store, thread.thread_id, owner)
    counting = CountingStore(store)

    forked = fork_thread(cast(MessageStore, counting), source, owner=owner, at=1)

    assert forked.position == 1
    resolved = {"get_stream_messages": 1} if given == "id" else {}
    # the history, then the fork and its line in the owner's index
    assert counting.calls == Counter(
        {**resolved, "read_stream": 1, "write_messages": 1, "write_message": 1}
    )
