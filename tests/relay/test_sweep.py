"""The relay's pass against the real Message DB: what it announces, watches and records.

Every test first catches the relay up with whatever earlier tests wrote, then writes its own
streams, so only its own announcements count. Each fails when the mechanism it names is removed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from messagedb_agent.events import (
    ErrorOccurred,
    Event,
    LLMCallFailed,
    LLMCallRequested,
    Metadata,
    ModelUnavailable,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
    ToolExecutionFailed,
    ToolExecutionRequested,
    UserMessageAdded,
    to_message,
)
from messagedb_agent.events.base import UNANSWERED_AFTER
from messagedb_agent.notification import Notification
from messagedb_agent.relay import position as position_store
from messagedb_agent.relay.sweep import RECHECK, sweep
from messagedb_agent.store.client import MessageStore

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
LEASE = timedelta(minutes=5)
SECOND = timedelta(seconds=1)


def _llm_claim(lease_expires_at: datetime) -> Event:
    return LLMCallRequested(
        step_id="s1",
        model="m",
        context_position=1,
        context_messages=1,
        lease_expires_at=lease_expires_at,
    )


def _tool_claim(lease_expires_at: datetime) -> Event:
    return ToolExecutionRequested(
        step_id="s1",
        tool_call_id="c0",
        tool_name="add",
        arguments={},
        lease_expires_at=lease_expires_at,
    )


def _reply_claim(lease_expires_at: datetime) -> Event:
    return ReplyDeliveryRequested(
        step_id="s1",
        reply_position=3,
        callback_url="https://example.com/hook",
        lease_expires_at=lease_expires_at,
    )


def _llm_failure(retryable: bool, retry_at: datetime | None) -> Event:
    return LLMCallFailed(step_id="s1", error_message="busy", retryable=retryable, retry_at=retry_at)


def _tool_failure(retryable: bool, retry_at: datetime | None) -> Event:
    return ToolExecutionFailed(
        step_id="s1",
        tool_call_id="c0",
        tool_name="add",
        error_message="timed out",
        retryable=retryable,
        retry_at=retry_at,
    )


def _model_unavailable(retryable: bool, retry_at: datetime | None) -> Event:
    return ModelUnavailable(
        step_id="s1", error_message="403", error_kind="auth", retryable=retryable, retry_at=retry_at
    )


def _reply_failure(retryable: bool, retry_at: datetime | None) -> Event:
    return ReplyDeliveryFailed(
        step_id="s1", attempt=1, error_message="503", retryable=retryable, retry_at=retry_at
    )


CLAIMS = pytest.mark.parametrize(
    "claim",
    [_llm_claim, _tool_claim, _reply_claim],
    ids=["LLMCallRequested", "ToolExecutionRequested", "ReplyDeliveryRequested"],
)
FAILURES = pytest.mark.parametrize(
    "failure",
    [_llm_failure, _model_unavailable, _tool_failure, _reply_failure],
    ids=["LLMCallFailed", "ModelUnavailable", "ToolExecutionFailed", "ReplyDeliveryFailed"],
)


def new_stream() -> str:
    return f"thread-{uuid.uuid4()}"


def started(store: MessageStore) -> str:
    """A thread stream with a first message, so its step events sit past position 0."""
    stream = new_stream()
    write(store, stream, said())
    return stream


def write(store: MessageStore, stream: str, event: Event) -> int:
    message = to_message(event, Metadata())
    return store.write_message(None, stream, message.type, message.data, message.metadata)


def said(text: str = "hello") -> Event:
    return UserMessageAdded(message=text)


def catch_up(store: MessageStore, now: datetime) -> list[Notification]:
    """Sweep and record, as relay runs at `now` would, until the whole category is read."""
    found: list[Notification] = []
    while True:
        result = sweep(store, now, batch_size=100_000)
        assert result.record(store)
        found += result.notifications
        if result.read == 0:
            return found


def positions(found: Sequence[Notification], stream: str) -> list[int]:
    return [n.position for n in found if n.stream_name == stream]


def watched(store: MessageStore) -> dict[str, datetime]:
    return position_store.get(store)[0].watch


def written_at(store: MessageStore, stream: str) -> datetime:
    """When the stream's head was written, as the relay reads it (UTC)."""
    last = store.get_last_stream_message(stream)
    assert last is not None
    return last.time if last.time.tzinfo else last.time.replace(tzinfo=UTC)


def global_position(store: MessageStore, stream: str) -> int:
    last = store.get_last_stream_message(stream)
    assert last is not None
    return last.global_position


# -- the lease watch -------------------------------------------------------------------------


@CLAIMS
def test_a_claim_is_announced_once_when_written_and_not_again_before_its_lease_expires(
    store: MessageStore, claim: Callable[[datetime], Event]
) -> None:
    catch_up(store, NOW)
    stream = started(store)
    head = write(store, stream, claim(NOW + LEASE))

    assert positions(catch_up(store, NOW), stream) == [head]
    write(store, new_stream(), said())  # the category moves on
    assert positions(catch_up(store, NOW + LEASE - SECOND), stream) == []
    assert stream in watched(store)


@CLAIMS
def test_a_claim_is_reannounced_at_its_head_after_its_lease_though_the_category_moved_on(
    store: MessageStore, claim: Callable[[datetime], Event]
) -> None:
    """A worker that crashed holding the claim wrote nothing more: only the watch remembers it."""
    catch_up(store, NOW)
    stream = started(store)
    head = write(store, stream, claim(NOW + LEASE))
    catch_up(store, NOW)
    other = new_stream()
    write(store, other, said())
    catch_up(store, NOW)
    assert position_store.get(store)[0].position >= global_position(store, other)

    assert positions(catch_up(store, NOW + LEASE + SECOND), stream) == [head]


def test_a_claim_nobody_moves_on_is_reannounced_again_after_the_recheck_interval(
    store: MessageStore,
) -> None:
    """The re-announcement may itself be lost; the relay keeps offering the step until it moves."""
    catch_up(store, NOW)
    stream = started(store)
    head = write(store, stream, _llm_claim(NOW + LEASE))
    catch_up(store, NOW)
    expired = NOW + LEASE + SECOND

    assert positions(catch_up(store, expired), stream) == [head]
    assert positions(catch_up(store, expired + RECHECK - SECOND), stream) == []
    assert positions(catch_up(store, expired + RECHECK + SECOND), stream) == [head]


def test_a_stream_leaves_the_watch_once_an_event_that_never_needs_a_step_follows_its_claim(
    store: MessageStore,
) -> None:
    catch_up(store, NOW)
    stream = started(store)
    write(store, stream, _llm_claim(NOW + LEASE))
    catch_up(store, NOW)
    head = write(store, stream, ErrorOccurred(error_type="x", error_message="noted"))

    assert positions(catch_up(store, NOW), stream) == [head]
    assert stream not in watched(store)
    assert positions(catch_up(store, NOW + LEASE + timedelta(hours=1)), stream) == []


def test_a_claim_with_a_naive_lease_time_is_read_as_utc_and_the_relay_keeps_going(
    store: MessageStore,
) -> None:
    """A time without a zone (an older or foreign writer) is UTC, as the step engine reads it.

    Compared as it is with the relay's aware clock, it raised on every later run: one such
    event stopped the relay for good.
    """
    catch_up(store, NOW)
    stream = started(store)
    head = write(store, stream, _llm_claim((NOW + LEASE).replace(tzinfo=None)))
    catch_up(store, NOW)
    later = new_stream()
    later_head = write(store, later, said())

    found = catch_up(store, NOW + LEASE - SECOND)
    assert (positions(found, stream), positions(found, later)) == ([], [later_head])
    assert positions(catch_up(store, NOW + LEASE + SECOND), stream) == [head]


# -- backoffs --------------------------------------------------------------------------------


@FAILURES
def test_a_retryable_failure_is_watched_until_its_retry_at(
    store: MessageStore, failure: Callable[[bool, datetime | None], Event]
) -> None:
    catch_up(store, NOW)
    stream = started(store)
    retry_at = NOW + timedelta(minutes=1)
    head = write(store, stream, failure(True, retry_at))
    catch_up(store, NOW)

    assert positions(catch_up(store, retry_at - SECOND), stream) == []
    assert positions(catch_up(store, retry_at + SECOND), stream) == [head]


@FAILURES
def test_a_failure_that_is_not_retryable_is_announced_again_once_unanswered_not_at_retry_at(
    store: MessageStore, failure: Callable[[bool, datetime | None], Event]
) -> None:
    """The step gives up on it (or goes on without the failed part) at once: if that step's
    notification is lost, the relay offers it again like any unanswered head."""
    catch_up(store, NOW)
    stream = started(store)
    head = write(store, stream, failure(False, NOW - timedelta(days=1)))
    written = written_at(store, stream)

    assert positions(catch_up(store, NOW), stream) == [head]
    assert watched(store)[stream] == written + UNANSWERED_AFTER
    assert positions(catch_up(store, written + UNANSWERED_AFTER - SECOND), stream) == []
    assert positions(catch_up(store, written + UNANSWERED_AFTER + SECOND), stream) == [head]


# -- stale positions -------------------------------------------------------------------------


def test_a_stream_touched_several_times_in_one_batch_is_announced_once_at_its_newest_position(
    store: MessageStore,
) -> None:
    """Any older position would be stale: the step would acknowledge it and do nothing."""
    catch_up(store, NOW)
    stream, other = new_stream(), new_stream()
    written: list[int] = []
    for i in range(3):
        written.append(write(store, stream, said(f"message {i}")))
        write(store, other, said(f"message {i}"))

    result = sweep(store, NOW, batch_size=100_000)

    assert result.read == 6
    assert positions(result.notifications, stream) == [written[-1]]
    assert written[-1] == store.stream_version(stream)


def test_a_watched_stream_that_was_emptied_leaves_the_watch_quietly(
    store: MessageStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream with no messages has no head to announce; it is not a foreign stream either."""
    catch_up(store, NOW)
    stream = started(store)
    write(store, stream, _llm_claim(NOW + LEASE))
    catch_up(store, NOW)
    with store.pool.connection() as conn:
        conn.execute("DELETE FROM message_store.messages WHERE stream_name = %s", (stream,))
    assert store.stream_version(stream) is None

    with caplog.at_level(logging.WARNING, logger="messagedb_agent.relay"):
        found = catch_up(store, NOW + LEASE + SECOND)

    assert positions(found, stream) == []
    assert stream not in watched(store)
    assert not [r for r in caplog.records if stream in r.getMessage()]


def test_a_sweep_that_reads_nothing_keeps_the_stored_position(store: MessageStore) -> None:
    write(store, new_stream(), said())
    catch_up(store, NOW)
    before = position_store.get(store)[0].position

    result = sweep(store, NOW, batch_size=100_000)

    assert (result.read, result.state.position) == (0, before)
    assert result.record(store)
    assert position_store.get(store)[0].position == before > 0


def test_a_relay_that_swept_a_stale_state_loses_the_race_and_the_newer_state_stands(
    store: MessageStore,
) -> None:
    """Two relays read the same state; the one that read less records last and must not win."""
    catch_up(store, NOW)
    for i in range(3):
        write(store, new_stream(), said(f"message {i}"))
    behind = sweep(store, NOW, batch_size=1)
    ahead = sweep(store, NOW, batch_size=100_000)
    assert behind.state.position < ahead.state.position

    assert ahead.record(store)
    assert not behind.record(store)
    assert position_store.get(store)[0] == ahead.state


def test_a_foreign_stream_in_the_category_is_skipped_and_the_position_still_advances(
    store: MessageStore,
) -> None:
    foreign = f"thread-{uuid.uuid4().hex[:8]}"  # a valid stream name, but not thread-<uuid>
    store.write_message(None, foreign, "Something", {"x": 1})
    real = f"thread-{uuid.uuid4()}"
    position = store.write_message(None, real, "Something", {"x": 2})
    result = sweep(store, datetime.now(UTC), batch_size=100_000)
    streams = {n.stream_name: n.position for n in result.notifications}
    assert foreign not in streams
    assert streams[real] == position
    last = store.get_last_stream_message(real)
    assert last is not None
    assert result.state.position >= last.global_position


def test_a_message_nothing_answered_is_announced_again_once_it_has_waited_too_long(
    store: MessageStore,
) -> None:
    """Its notification was lost (a dropped push, or one dead-lettered while the step
    function was down): without this the thread would wait for ever."""
    catch_up(store, NOW)
    stream = new_stream()
    position = write(store, stream, UserMessageAdded(message="anyone?", timestamp=NOW))
    written = written_at(store, stream)
    assert Notification(stream_name=stream, position=position) in catch_up(store, written)
    assert stream not in {n.stream_name for n in catch_up(store, written + UNANSWERED_AFTER / 2)}
    later = catch_up(store, written + UNANSWERED_AFTER)
    assert Notification(stream_name=stream, position=position) in later
    lease = written + timedelta(hours=1)
    write(store, stream, _llm_claim(lease))  # a step took it on
    catch_up(store, written + UNANSWERED_AFTER * 2)  # announces the claim, as any new head
    assert stream not in {n.stream_name for n in catch_up(store, lease - SECOND)}
