"""`MessageStore.transaction()`: writes and the caller's own statements commit together or not at all."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime

import pytest

from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import DuplicateMessageError
from messagedb_agent.store.message import NewMessage
from messagedb_agent.store.transaction import TransactionAborted
from messagedb_agent.threads import commands
from messagedb_agent.threads.index import list_threads

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Crash(Exception):
    pass


def _other(stream: str) -> str:
    return f"{stream.split('-', 1)[0]}-{uuid.uuid4()}"


def test_writes_and_a_statement_of_its_own_commit_together(
    store: MessageStore, stream: str
) -> None:
    other = _other(stream)
    with store.transaction() as transaction:
        assert transaction.write_message(None, stream, "A", {}) == 0
        transaction.write_messages(other, [NewMessage("B", {}), NewMessage("C", {})])
        with transaction.connection() as conn:
            row = conn.execute("SELECT message_store.stream_version(%s)", (other,)).fetchone()
        assert row == (1,)  # its own writes are visible inside
        assert store.stream_version(stream) is None  # and nowhere else until it commits

    assert store.stream_version(stream) == 0
    assert [m.type for m in store.read_stream(other)] == ["B", "C"]


def test_a_failure_after_the_writes_leaves_nothing_written(
    store: MessageStore, stream: str
) -> None:
    other = _other(stream)

    def crash_after_writing() -> None:
        with store.transaction() as transaction:
            transaction.write_message(None, stream, "A", {})
            transaction.write_message(None, other, "B", {})
            raise Crash

    with pytest.raises(Crash):
        crash_after_writing()

    assert store.stream_version(stream) is None
    assert store.stream_version(other) is None


def test_a_refused_write_aborts_the_whole_transaction(store: MessageStore, stream: str) -> None:
    taken = str(uuid.uuid4())
    store.write_message(taken, stream, "First", {})
    other = _other(stream)

    def write_twice() -> None:
        with store.transaction() as transaction:
            transaction.write_message(None, other, "Earlier", {})
            transaction.write_message(taken, stream, "Again", {})

    with pytest.raises(TransactionAborted) as raised:
        write_twice()

    assert isinstance(raised.value.refusal, DuplicateMessageError)
    assert not isinstance(raised.value, DuplicateMessageError)  # a command cannot carry on
    assert store.stream_version(other) is None
    assert [m.type for m in store.read_stream(stream)] == ["First"]
    assert store.write_message(None, other, "After", {}) == 0  # the connection is clean again


def test_a_refusal_that_was_caught_still_cannot_commit(store: MessageStore, stream: str) -> None:
    other = _other(stream)
    store.write_message(None, stream, "First", {})

    def swallow_the_refusal() -> None:
        with store.transaction() as transaction:
            transaction.write_message(None, other, "Earlier", {})
            with contextlib.suppress(TransactionAborted):  # the block must not commit anyway
                transaction.write_message(None, stream, "Late", {}, expected_version=-1)
            with pytest.raises(TransactionAborted):
                transaction.stream_version(other)

    with pytest.raises(TransactionAborted):
        swallow_the_refusal()

    assert store.stream_version(other) is None


def test_a_transaction_inside_one_is_the_same_one(store: MessageStore, stream: str) -> None:
    def crash_after_the_inner_one() -> None:
        with store.transaction() as outer:
            with outer.transaction() as inner:
                inner.write_message(None, stream, "Inner", {})
            raise Crash

    with pytest.raises(Crash):
        crash_after_the_inner_one()

    assert store.stream_version(stream) is None


def test_a_thread_command_runs_inside_one_unchanged(store: MessageStore) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    started: list[commands.Appended] = []

    def crash_after_starting() -> None:
        with store.transaction() as transaction:
            started.append(commands.start_thread(transaction, owner=owner, message="hi", now=NOW))
            raise Crash

    with pytest.raises(Crash):
        crash_after_starting()

    assert store.stream_version(started[0].stream_name) is None  # nor its index entry:
    assert commands.start_thread(store, owner=owner, message="hi", now=NOW).created
    assert len(list_threads(store, owner).items) == 1
