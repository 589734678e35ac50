"""Derived ids: unambiguous in their parts, and stable across releases."""

from __future__ import annotations

import uuid

import pytest

from messagedb_agent.events import ids
from messagedb_agent.store import stream_name
from messagedb_agent.store.stream_name import InvalidStreamName

STREAM = "thread-2b0c7a55-8f0e-4d8a-a1f7-0c7f1d2e3a4b"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("p/q", "r"), ("p", "q/r")),
        (("p", "q/r"), ("p/", "q/r")),
        (("a1:b", "c"), ("a", "1:bc")),
        (("", "x/y"), ("x", "y")),
        (("1:a", "b"), ("1", "a1:b")),
    ],
)
def test_an_idempotent_thread_is_its_users_whatever_separators_the_parts_hold(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    assert ids.idempotent_thread_id(*first) != ids.idempotent_thread_id(*second)


def test_an_idempotent_thread_id_is_the_same_for_the_same_user_and_key() -> None:
    assert ids.idempotent_thread_id("alice", "k") == ids.idempotent_thread_id("alice", "k")
    assert ids.idempotent_thread_id("alice", "k") != ids.idempotent_thread_id("alice", "k2")
    assert ids.idempotent_thread_id("alice", "k") != ids.idempotent_thread_id("bob", "k")


def test_ids_are_stable_across_releases() -> None:
    """A thread in flight during a deploy must derive the same ids before and after it, or a
    retried step writes its result twice; a change here needs a migration, not a new value."""
    step = ids.llm_step_id(STREAM, 4)
    assert step == "c36f3a63-57c5-5d17-a673-6b872a045515"
    assert ids.compaction_step_id(STREAM, 4) == "9ede9b81-0cfc-5a13-b51d-7de401699ebd"
    assert ids.tool_step_id(step) == "66cc2526-d947-50da-bb1d-133636912754"
    assert ids.delivery_step_id(step) == "53aacef9-5d21-50cb-ad69-42a4599954bf"
    assert ids.closing_delivery_step_id(STREAM) == "85ba4c19-0039-571a-96e8-cac24b34d803"
    assert ids.message_id(step, "response") == "52e2c778-50b3-5727-9344-a2b3cc02df86"
    assert ids.message_id(STREAM, "message/k") == "fa7804b9-dc7b-54c4-a3bc-aae839bb67a1"
    assert ids.idempotent_thread_id("alice", "key-1") == uuid.UUID(
        "c2714a36-4796-5709-9461-197c3afa22de"
    )


def test_a_message_part_may_hold_the_separator_because_the_step_cannot() -> None:
    """Step ids are UUIDs or stream names, so `step/part` splits at its first `/`."""
    assert "/" not in ids.llm_step_id(STREAM, 4)
    with pytest.raises(InvalidStreamName):
        stream_name.build("thread", "a/b")
    parts = ["message/a/b", "message/a", "tasks/call-1", "request-call-1-2", "request-call-12"]
    assert len({ids.message_id(STREAM, p) for p in parts}) == len(parts)
