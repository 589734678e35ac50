"""What a chat platform's user said, into that user's thread: the part every channel shares.

A platform thread maps to one of our threads per user: its id is derived from the user and the
platform's own thread identity (`idempotent_thread_id(user, channel_key(...))`), and its
`SessionStarted` names the reply address (`callback_url`, e.g. `slack:T1/C2/1700.0001`). So the
mapping is a function plus the thread's own first event: nothing to look up, nothing mutable.
Two people in one platform thread each talk to the agent in a thread of their own, as two API
users would: neither's messages, replies or approvals ever reach the other's conversation.

A platform message's identity (`channel_key` of its own id) is the user message's idempotency
key, so a platform retry, a duplicate delivery, or the same message arriving as two events
(Slack's `app_mention` and `message`) appends it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from messagedb_agent.events.ids import channel_key, idempotent_thread_id
from messagedb_agent.events.system import SessionCompleted
from messagedb_agent.projections.approvals import Approval, project_approvals
from messagedb_agent.store import stream_name as names
from messagedb_agent.threads.approvals import decide_approval
from messagedb_agent.threads.commands import (
    Appended,
    Found,
    add_message,
    find_thread,
    start_thread,
)
from messagedb_agent.threads.errors import ThreadClosed, ThreadNotFound
from messagedb_agent.threads.reading import read_thread

if TYPE_CHECKING:
    from messagedb_agent.api.rate_limit import RateLimiter
    from messagedb_agent.store.client import MessageStore


def generation_key(thread_key: str, generation: int) -> str:
    """The key of the person's `generation`-th conversation in a platform thread: the first is
    the thread's own key; a later one adds a part, which no platform's own keys have (each
    platform's keys have a fixed number of parts)."""
    return (
        thread_key if generation == 0 else thread_key + channel_key("generation", str(generation))
    )


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    user: str  # `ids.channel_user(...)`
    thread_key: str  # `ids.channel_key(...)` of the platform thread
    message_key: str  # `ids.channel_key(...)` of the platform message
    text: str
    reply_to: str  # the reply address, the thread's `callback_url`
    title: str | None = None
    # a DM or a mention may start a conversation; any other message only continues one
    starts: bool = True


@dataclass(frozen=True, slots=True)
class Said:
    """What became of a platform message."""

    appended: Appended | None  # None: not for the agent (no conversation to continue)
    retry_after: int | None = None  # over the user's rate limit: nothing appended

    @property
    def new(self) -> bool:
        return self.appended is not None and self.appended.created


class Conversations:
    def __init__(
        self,
        store: MessageStore,
        publish: Callable[[Appended], None],
        clock: Callable[[], datetime],
        limiter: Callable[[], RateLimiter | None] = lambda: None,
        shards: int = names.DEFAULT_THREAD_SHARDS,
    ) -> None:
        self._store = store
        self._publish = publish
        self._clock = clock
        self._limiter = limiter
        self._shards = shards

    def thread_of(self, user: str, thread_key: str) -> str:
        return str(names.in_shard(idempotent_thread_id(user, thread_key), self._shards))

    def find(self, user: str, thread_key: str) -> Found | None:
        try:
            return find_thread(self._store, self.thread_of(user, thread_key), user)
        except ThreadNotFound:
            return None

    def said(self, message: ChannelMessage) -> Said:
        """Append the message once (a repeat finds the first), and ask for the next step.

        Raises the thread's own errors (a closed thread, a rejected message) for the channel
        to tell its user in words."""
        found = self.find(message.user, message.thread_key)
        if found is None and not message.starts:
            return Said(None)
        limiter = self._limiter()
        if limiter is not None:
            decision = limiter.take(message.user)
            if not decision.allowed:
                return Said(None, retry_after=decision.retry_after)
        now = self._clock()
        key = message.thread_key
        for _ in range(2):
            if found is None:
                found = self._start(message, key, now)
            try:
                appended = add_message(
                    self._store,
                    found,
                    owner=message.user,
                    message=message.text,
                    now=now,
                    idempotency_key=message.message_key,
                )
            except ThreadClosed:
                if not message.starts or key != message.thread_key:
                    raise  # a reply in an ended thread: the channel says how to start anew
                found, key = self._current(message.user, message.thread_key)
                continue
            if appended.created:
                self._publish(appended)
            return Said(appended)
        raise ThreadClosed(found.thread_id if found is not None else key)

    def _start(self, message: ChannelMessage, key: str, now: datetime) -> Found:
        started = start_thread(
            self._store,
            owner=message.user,
            message=None,
            now=now,
            title=message.title,
            callback_url=message.reply_to,
            idempotency_key=key,
            shards=self._shards,
        )
        return find_thread(self._store, started.thread_id, message.user)

    def _current(self, user: str, thread_key: str) -> tuple[Found | None, str]:
        """The person's conversation in the platform thread now, and its key: after the first
        conversation ended (a limit, a failure, an end asked for), the next one is generation
        1, then 2...; each is started only once the one before has ended, so "exists and has
        ended" holds for generations 0..k-1 and for no later one, and a doubling then halving
        search finds the current one in about 2·log2(k) reads. None: the next is to start."""

        def ended(generation: int) -> bool:
            found = self.find(user, generation_key(thread_key, generation))
            return found is not None and self._ended(found)

        high = 1
        while ended(high):
            high *= 2
        low = high // 2  # generation `low` has ended (generation 0, the caller's, has)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if ended(middle) else (low, middle)
        key = generation_key(thread_key, high)
        return self.find(user, key), key

    def _ended(self, found: Found) -> bool:
        last = self._store.get_last_stream_message(found.stream_name, SessionCompleted.type)
        return last is not None

    def pending(self, user: str, thread_key: str) -> tuple[str, list[Approval]] | None:
        """The user's conversation in a platform thread, and the calls it waits to have
        approved: for a platform whose buttons cannot carry a thread id (Telegram's 64 bytes)."""
        found = self.find(user, thread_key)
        if found is not None and self._ended(found):
            found, _ = self._current(user, thread_key)
        if found is None:
            return None
        return found.thread_id, project_approvals(
            read_thread(self._store, found.stream_name)
        ).pending

    def decide(self, user: str, thread_id: str, tool_call_id: str, *, approve: bool) -> bool:
        """A platform user's answer to an approval button: as that user, so a button pressed
        by anyone but the thread's owner finds no thread. True when it was new."""
        decided = decide_approval(
            self._store, thread_id, tool_call_id, owner=user, approve=approve, now=self._clock()
        )
        if decided.created:
            self._publish(Appended(decided.thread_id, decided.stream_name, decided.position, True))
        return decided.created
