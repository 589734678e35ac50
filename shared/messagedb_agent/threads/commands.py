"""Commands on a thread from outside the step loop: start, add a message, cancel, end, fork.

Each writes events and returns the notification that asks for the next step; nothing here
calls a model. Idempotency keys make a retried command write nothing new.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from messagedb_agent.events import (
    Metadata,
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
    SessionCompleted,
    SessionStarted,
    SessionTerminationRequested,
    TurnCancelled,
    UnknownEvent,
    UserMessageAdded,
    to_message,
)
from messagedb_agent.events.ids import idempotent_thread_id, message_id
from messagedb_agent.events.system import MULTITASK
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import project_turn_running
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.errors import ConcurrencyError, DuplicateMessageError
from messagedb_agent.store.message import MessageData, NewMessage
from messagedb_agent.threads import archive
from messagedb_agent.threads.errors import (
    MessageRejected,
    ThreadClosed,
    ThreadNotFound,
    TurnRunning,
)
from messagedb_agent.threads.index import record_in_index
from messagedb_agent.threads.reading import owner_of, read_thread, started_of

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

DEFAULT_MAX_MESSAGE_LENGTH = 5000
APPEND_ATTEMPTS = 5  # add_message's tries at the head before it appends unconditionally


@dataclass(frozen=True, slots=True)
class Appended:
    thread_id: str
    stream_name: str
    position: int
    created: bool = True

    @property
    def notification(self) -> Notification:
        return Notification(stream_name=self.stream_name, position=self.position)


def clean_message(text: str, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> str:
    if not isinstance(text, str) or not text.strip():
        raise MessageRejected("I didn't catch that: the message is empty.")
    text = text.strip()
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text):
        raise MessageRejected("That message contains control characters I can't store.")
    if len(text) > max_length:
        raise MessageRejected(
            f"That message is too long ({len(text):,} characters); the limit is {max_length:,}."
        )
    return text


def start_thread(
    store: MessageStore,
    *,
    owner: str,
    message: str | None,
    now: datetime,
    title: str | None = None,
    callback_url: str | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
    idempotency_key: str | None = None,
    max_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    traceparent: str | None = None,
    shards: int = names.DEFAULT_THREAD_SHARDS,
    multitask: str | None = None,
) -> Appended:
    """Create a thread (and its first user message); a repeated idempotency key re-finds it.

    The thread lives in one of `shards` categories, named by its id's first byte (see
    `stream_name`). `traceparent` (W3C) makes the turn one trace: every event that follows
    copies it.
    """
    text = clean_message(message, max_length) if message is not None else None
    if title is not None and any(ord(c) < 32 for c in title):
        raise MessageRejected("The title contains control characters I can't store.")
    thread_uuid = (
        names.in_shard(idempotent_thread_id(owner, idempotency_key), shards)
        if idempotency_key
        else names.new_thread_id(shards)
    )
    thread_id = str(thread_uuid)
    stream = names.thread_stream(thread_uuid)
    meta = Metadata(correlation_stream_name=stream, user_id=owner, traceparent=traceparent)
    batch: list[NewMessage] = [
        to_message(
            SessionStarted(
                thread_id=thread_id,
                owner=owner,
                title=title,
                callback_url=callback_url,
                model=model,
                system_prompt=system_prompt,
                multitask=multitask,
            ),
            meta,
            id=message_id(stream, "started"),
        )
    ]
    if text is not None:
        batch.append(
            to_message(
                UserMessageAdded(message=text, timestamp=now),
                meta.model_copy(update={"turn_id": message_id(stream, "message-0")}),
                id=message_id(stream, "message-0"),
            )
        )
    index_title = title or (text[:80] if text else None)
    try:
        position = store.write_messages(stream, batch, expected_version=-1)
    except (DuplicateMessageError, ConcurrencyError):
        # The same key's thread exists: an earlier try, or one racing this one. Message DB
        # checks `expected_version` before the ids, so a write that lost the race to a
        # concurrent one is told the stream is not new rather than that the id is taken.
        if owner_of(store, stream) != owner:
            raise ThreadNotFound(thread_id) from None
        record_in_index(store, owner, thread_id, stream, index_title)  # if the first died here
        return Appended(thread_id, stream, len(batch) - 1, False)
    record_in_index(store, owner, thread_id, stream, index_title)
    return Appended(thread_id, stream, position)


@dataclass(frozen=True, slots=True)
class Found:
    """A thread the owner may use, and its own settings, read with its owner."""

    thread_id: str
    stream_name: str
    started: dict[str, Any]  # the SessionStarted data

    @property
    def multitask(self) -> str:
        policy = self.started.get("multitask")
        return policy if isinstance(policy, str) and policy in MULTITASK else "enqueue"


def _found(store: MessageStore, thread: str | Found, owner: str) -> Found:
    """`thread` found for `owner`. A request that found it already hands down its `Found`
    (from `find_thread`, for the same owner), so the thread is read once per request."""
    return thread if isinstance(thread, Found) else find_thread(store, thread, owner)


def resolve_thread(store: MessageStore, thread: str | Found, owner: str) -> tuple[str, str]:
    """(thread id, stream name) for a thread id or stream name the owner may use (or a
    `Found`, not read again)."""
    found = _found(store, thread, owner)
    return found.thread_id, found.stream_name


def find_thread(store: MessageStore, thread: str, owner: str) -> Found:
    """The thread for a thread id or stream name the owner may use, with its first message.

    A thread id is looked for in its shard, then in the legacy `thread` category, where
    threads created before sharding stay: only those pay the second read.
    """
    try:
        if thread.startswith(names.THREAD_CATEGORY):
            candidates: tuple[str, ...] = (thread,)
            thread_id = str(names.thread_id_of(thread))
        else:
            candidates = names.thread_stream_candidates(thread)
            thread_id = str(names.thread_id_of(candidates[0]))
    except (ValueError, names.InvalidStreamName):
        raise ThreadNotFound(thread) from None
    for stream in candidates:
        started = started_of(store, stream)
        if started is not None:
            if started.get("owner") != owner:
                raise ThreadNotFound(thread_id)
            return Found(thread_id, stream, started)
    # No rows: an archived thread of this owner is put back first (threads/archive.py).
    restored = archive.restore_if_archived(store, owner, candidates)
    if restored is not None and (started := started_of(store, restored)) is not None:
        return Found(thread_id, restored, started)
    raise ThreadNotFound(thread_id)


def add_message(
    store: MessageStore,
    thread: str | Found,
    *,
    owner: str,
    message: str,
    now: datetime,
    idempotency_key: str | None = None,
    max_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    traceparent: str | None = None,
    multitask: str | None = None,
) -> Appended:
    """Append the user's message. While a turn runs, `multitask` (else the thread's own
    policy, else `enqueue`) says what happens: see `events.system.MULTITASK`. Every policy but
    `enqueue` judges "a turn runs" at the head it read and writes at exactly that head, so two
    concurrent messages cannot both see an idle thread. `thread` may be the thread as the
    caller just found it: the first attempt does not read it again."""
    text = clean_message(message, max_length)
    key = idempotency_key or str(uuid.uuid4())

    def said(thread_id: str, stream: str, last: MessageData) -> NewMessage:
        if _ended(store, stream, last):
            raise ThreadClosed(thread_id)
        return said_in(stream)

    def said_in(stream: str) -> NewMessage:
        msg_id = message_id(stream, f"message/{key}")
        meta = Metadata(
            correlation_stream_name=stream, user_id=owner, turn_id=msg_id, traceparent=traceparent
        )
        return to_message(UserMessageAdded(message=text, timestamp=now), meta, id=msg_id)

    first = _found(store, thread, owner)
    name = first.thread_id if isinstance(thread, Found) else thread  # what a retry resolves
    policy = multitask or first.multitask
    if policy == "enqueue":
        return _append_at_head(store, name, owner, said, first)
    for attempt in range(APPEND_ATTEMPTS * 2):
        found = first if attempt == 0 else find_thread(store, name, owner)
        thread_id, stream = found.thread_id, found.stream_name
        events = read_thread(store, stream)
        if not events:
            continue  # archived since it was found: resolving it again restores it
        head = events[-1]
        if any(isinstance(e.event, SessionCompleted) for e in reversed(events)):
            raise ThreadClosed(thread_id)
        new = said_in(stream)
        batch = [new]
        if project_turn_running(events, now):
            if policy == "reject":
                raise TurnRunning(thread_id)
            last_user = max(
                (e.position for e in events if isinstance(e.event, UserMessageAdded)), default=-1
            )
            meta = Metadata(correlation_stream_name=stream, user_id=owner, traceparent=traceparent)
            stop = TurnCancelled(requested_by=owner, reason=policy, rollback=policy == "rollback")
            batch = [to_message(stop, meta, id=message_id(stream, f"cancel/{last_user}")), new]
        try:
            position = store.write_messages(stream, batch, expected_version=head.position)
        except DuplicateMessageError:
            assert new.id is not None
            return Appended(thread_id, stream, _position_of(store, stream, new.id), False)
        except ConcurrencyError:
            continue  # the head moved: judge again at the new one
        return Appended(thread_id, stream, position)
    raise ThreadNotFound(name)


# What the engine may still write after `SessionCompleted`: the delivery of the closing message.
_AFTER_THE_END = frozenset(
    {ReplyDeliveryRequested.type, ReplyDelivered.type, ReplyDeliveryFailed.type}
)


def _ended(store: MessageStore, stream: str, head: MessageData) -> bool:
    """Whether the thread is over: its head is `SessionCompleted`, or the closing message's
    delivery, written after it (then one indexed lookup says which)."""
    if head.type == SessionCompleted.type:
        return True
    if head.type not in _AFTER_THE_END:
        return False
    return store.get_last_stream_message(stream, SessionCompleted.type) is not None


def _append_at_head(
    store: MessageStore,
    thread: str,
    owner: str,
    make: Callable[[str, str, MessageData], NewMessage],
    first: Found | None = None,
) -> Appended:
    """Append the message `make` builds from (thread id, stream, head) at the head just read,
    so a thread archived meanwhile (its rows deleted) refuses the write instead of taking it at
    position 0; the next attempt restores it. The last attempt appends wherever the head is:
    only a busy thread gets there, never an idle one. A retried command (the same message id)
    reports the first write. `first`: the thread as the caller just resolved it, for the
    first attempt."""
    for attempt in range(APPEND_ATTEMPTS):
        found = first if attempt == 0 and first is not None else find_thread(store, thread, owner)
        thread_id, stream = found.thread_id, found.stream_name
        last = store.get_last_stream_message(stream)
        if last is None:
            continue  # archived since it was found: resolving it again restores it
        new = make(thread_id, stream, last)
        assert new.id is not None  # derived, so a retry finds its first write
        expected = last.position if attempt < APPEND_ATTEMPTS - 1 else None
        try:
            position = store.write_message(
                new.id, stream, new.type, new.data, new.metadata, expected
            )
        except DuplicateMessageError:
            return Appended(thread_id, stream, _position_of(store, stream, new.id), False)
        except ConcurrencyError:
            continue  # the head moved (a step's results, another message) or the rows went
        return Appended(thread_id, stream, position)
    raise ThreadNotFound(thread)  # emptied again and again while this was resolving it


def _position_of(store: MessageStore, stream: str, message_id_: str) -> int:
    """Where an already-written message is (a retried command reports the first write)."""
    for message in reversed(store.read_stream(stream)):
        if message.id == message_id_:
            return message.position
    version = store.stream_version(stream)
    return -1 if version is None else version


def request_termination(
    store: MessageStore,
    thread: str,
    *,
    owner: str,
    reason: str = "user_requested",
    traceparent: str | None = None,
) -> Appended:
    def ending(thread_id: str, stream: str, last: MessageData) -> NewMessage:
        meta = Metadata(correlation_stream_name=stream, user_id=owner, traceparent=traceparent)
        requested = SessionTerminationRequested(reason=reason, requested_by=owner)
        return to_message(requested, meta, id=message_id(stream, "termination-requested"))

    return _append_at_head(store, thread, owner, ending)


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A cancellation's answer: `appended` is None when nothing was running."""

    thread_id: str
    stream_name: str
    appended: Appended | None


def cancel_turn(
    store: MessageStore,
    thread: str,
    *,
    owner: str,
    now: datetime,
    reason: str | None = None,
    traceparent: str | None = None,
) -> Cancelled:
    """Stop the running turn: `TurnCancelled`, written at the head whose state said a turn was
    running (a head that moves meanwhile is read again), so it holds on every instance. When
    nothing runs, nothing is written. A turn is cancelled once: its cancellation's id is
    derived from the user message it cancels."""
    for _ in range(APPEND_ATTEMPTS):
        thread_id, stream = resolve_thread(store, thread, owner)
        events = read_thread(store, stream)
        if not events:
            continue  # archived since it was found: resolving it again restores it
        if not project_turn_running(events, now):
            return Cancelled(thread_id, stream, None)
        last_user = max(
            (e.position for e in events if isinstance(e.event, UserMessageAdded)), default=-1
        )
        meta = Metadata(correlation_stream_name=stream, user_id=owner, traceparent=traceparent)
        message = to_message(
            TurnCancelled(requested_by=owner, reason=reason),
            meta,
            id=message_id(stream, f"cancel/{last_user}"),
        )
        assert message.id is not None
        try:
            position = store.write_message(
                message.id,
                stream,
                message.type,
                message.data,
                message.metadata,
                events[-1].position,
            )
        except DuplicateMessageError:
            return Cancelled(thread_id, stream, None)  # this turn was cancelled already
        except ConcurrencyError:
            continue  # a step or a message moved the head: judge again
        return Cancelled(thread_id, stream, Appended(thread_id, stream, position))
    raise ThreadNotFound(thread)


def fork_thread(
    store: MessageStore,
    thread: str | Found,
    *,
    owner: str,
    at: int,
    shards: int = names.DEFAULT_THREAD_SHARDS,
) -> Appended:
    """A new thread whose history is the original's up to `at`, at the same positions.

    Positions are kept so that every position recorded inside the copied events (claims'
    context positions) still means the same thing in the fork. `thread` may be the thread as
    the caller just found it, which is not read again.
    """
    source_id, source = resolve_thread(store, thread, owner)
    history = read_thread(store, source, to_position=at)
    if not history or history[-1].position < at:
        raise MessageRejected(f"The conversation has no position {at} to fork at.")
    thread_uuid = names.new_thread_id(shards)
    stream = names.thread_stream(thread_uuid)
    meta = Metadata(correlation_stream_name=stream, user_id=owner)
    first = history[0].event
    assert isinstance(first, SessionStarted)
    started = first.model_copy(
        update={"thread_id": str(thread_uuid), "forked_from": source_id, "forked_at_position": at}
    )
    batch = [to_message(started, meta)]
    for recorded in history[1:]:
        copied_meta = recorded.metadata.model_copy(update={"correlation_stream_name": stream})
        if isinstance(recorded.event, UnknownEvent):
            data = recorded.event.data
            batch.append(NewMessage(recorded.event.type_name, data, copied_meta.to_json()))
        else:
            batch.append(to_message(recorded.event, copied_meta))
    position = store.write_messages(stream, batch, expected_version=-1)
    record_in_index(store, owner, str(thread_uuid), stream, started.title)
    return Appended(str(thread_uuid), stream, position)
