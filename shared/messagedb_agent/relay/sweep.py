"""One relay pass: what to announce, computed from the category and the stored state.

The pass reads the `thread` category after the stored global position and announces each
touched stream's newest position, plus watched streams whose lease or backoff has run out.
The caller publishes the announcements and only then records the new state, so a crash
between the two re-announces (harmless: steps drop stale or duplicate notifications) rather
than loses anything. Two relays running at once read the same batch; the second to record
loses the optimistic-concurrency race and its pass changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from messagedb_agent.events import Event, PositionRecorded, from_message
from messagedb_agent.notification import Notification
from messagedb_agent.relay import position as position_store
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.message import MessageData

# Types whose events can be due (claims and failures): a stream whose head is one is watched.
_WATCHED = frozenset(name for name, cls in Event.registry.items() if cls.due is not Event.due)
_RECHECK = timedelta(seconds=30)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    notifications: tuple[Notification, ...]
    state: PositionRecorded
    expected_version: int | None
    read: int

    def record(self, store: MessageStore) -> bool:
        """Store the new state; call only after every notification was published."""
        return position_store.put(store, self.state, self.expected_version)


def sweep(store: MessageStore, now: datetime, *, batch_size: int = 1000) -> Sweep:
    state, version = position_store.get(store)
    messages = store.get_category_messages(names.THREAD_CATEGORY, state.position + 1, batch_size)
    heads: dict[str, int] = {}
    watch = dict(state.watch)
    for message in messages:
        heads[message.stream_name] = message.position
        if message.type in _WATCHED:
            due = _due(message)
            if due is not None:
                watch[message.stream_name] = due
                continue
        watch.pop(message.stream_name, None)
    for stream, due in list(watch.items()):
        if stream in heads or _utc(due) > now:
            continue
        version_now = store.stream_version(stream)
        if version_now is None:
            watch.pop(stream)
            continue
        heads[stream] = version_now
        watch[stream] = now + _RECHECK  # re-announce later again if nobody moves it on
    new_position = messages[-1].global_position if messages else state.position
    notifications: list[Notification] = []
    for stream, head in heads.items():
        try:
            notifications.append(Notification(stream_name=stream, position=head))
        except ValueError:
            # Not a thread stream (written by something else into the category): nothing
            # to step, and never a reason to stop the sweep.
            log.warning("relay skips %s: not a thread stream", stream)
            watch.pop(stream, None)
    return Sweep(
        tuple(notifications),
        PositionRecorded(position=new_position, watch=watch),
        version,
        len(messages),
    )


def _due(message: MessageData) -> datetime | None:
    return from_message(message).event.due()


def _utc(moment: datetime) -> datetime:
    """A time without a zone (an older or foreign writer) is UTC, as the step engine reads it."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
