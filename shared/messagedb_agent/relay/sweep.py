"""One relay pass over one thread category: what to announce, from the category and the state.

The pass reads the category after its stored global position and announces each touched
stream's newest position, plus watched streams that have fallen due and still need a step.
The caller publishes the announcements and only then records the new state, so a crash
between the two re-announces (harmless: steps drop stale or duplicate notifications) rather
than loses anything. Two relays running at once read the same batch; the second to record
loses the optimistic-concurrency race and its pass changes nothing.

The watch: every head that needs a step is re-announced until it moves.
- When the category read meets a stream's newest event, `Event.due(written)` (events/base.py)
  says when to look at that stream again if nothing follows: a claim when its lease ends, a
  retryable failure at its retry time, any other head that asks for a step (a user message, a
  model response, a tool result, a compaction, a termination request, a failure given up on,
  a delivered reply or a completion that may owe a delivery) `UNANSWERED_AFTER` after it was
  written. A head that never needs a step by itself (a thread just opened, an unknown event)
  is not watched.
- When a watched stream falls due, the relay reads the thread and asks the same pure
  projection the step function decides with (`project_next_step`): work to do is announced
  and looked at again after `RECHECK` (the announcement may be lost too); a live claim or a
  running backoff is looked at again when it ends; a thread that waits for its user or is over
  leaves the watch. A stream that moves is re-evaluated from its new head by the category read.
So the watch holds only threads that need (or will need) a step, and a thread whose head
needs one is announced again and again, whatever happened to its notifications: lost, or
dead-lettered while the step function was down. That makes the dead-letter topic
informational: nothing in it has to be replayed by hand.

Reading a due thread costs one stream read; it happens only to heads that sat unmoved past
their due time (mostly a turn's last event, once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from messagedb_agent.events import Event, PositionRecorded, from_message
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import Policy, StepKind, project_next_step
from messagedb_agent.relay import position as position_store
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.message import MessageData
from messagedb_agent.threads.reading import read_thread

# Types whose events can be due: only their messages are parsed by the category read.
_DUE_TYPES = frozenset(
    name for name, cls in Event.registry.items() if cls.asks_for_step or cls.due is not Event.due
)
RECHECK = timedelta(seconds=30)
_WAITING = frozenset({StepKind.IN_FLIGHT, StepKind.RETRY_LATER, StepKind.AWAITING_APPROVAL})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    category: str
    notifications: tuple[Notification, ...]
    state: PositionRecorded
    expected_version: int | None
    read: int
    changed: bool = True  # False: nothing read and the watch unchanged, so nothing to record

    def record(self, store: MessageStore) -> bool:
        """Store the new state; call only after every notification was published.

        A pass that read nothing and changed no watch records nothing (a looping relay would
        otherwise append a state every tick) and counts as recorded."""
        if not self.changed:
            return True
        stream = position_store.position_stream(self.category)
        return position_store.put(store, self.state, self.expected_version, stream)


def sweep(
    store: MessageStore,
    now: datetime,
    *,
    category: str = names.THREAD_CATEGORY,
    batch_size: int = 1000,
    policy: Policy | None = None,
) -> Sweep:
    state, version = position_store.get(store, position_store.position_stream(category))
    messages = store.get_category_messages(category, state.position + 1, batch_size)
    heads: dict[str, int] = {}
    watch = dict(state.watch)
    for message in messages:
        heads[message.stream_name] = message.position
        due = _due(message)
        if due is None:
            watch.pop(message.stream_name, None)
        else:
            watch[message.stream_name] = due
    for stream, due in list(watch.items()):
        if stream in heads or _utc(due) > now:
            continue
        if not _is_thread(stream):
            log.warning("relay skips %s: not a thread stream", stream)
            watch.pop(stream)
            continue
        head, again = _look(store, stream, now, policy)
        if head is not None:
            heads[stream] = head
        if again is None:
            watch.pop(stream)
        else:
            watch[stream] = again
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
        category,
        tuple(notifications),
        PositionRecorded(position=new_position, watch=watch),
        version,
        len(messages),
        changed=bool(messages) or watch != state.watch,
    )


def _look(
    store: MessageStore, stream: str, now: datetime, policy: Policy | None
) -> tuple[int | None, datetime | None]:
    """(the head to announce now or None, when to look again or None to stop watching)."""
    events = read_thread(store, stream)
    if not events:
        return None, None  # emptied: nothing to step
    decision = project_next_step(events, now, policy)
    if decision.kind.is_work:
        return events[-1].position, now + RECHECK
    if decision.kind in _WAITING and decision.not_before is not None:
        return None, max(_utc(decision.not_before), now + timedelta(seconds=1))
    return None, None


def _due(message: MessageData) -> datetime | None:
    if message.type not in _DUE_TYPES:
        return None
    kind = Event.registry[message.type]
    # A type whose due time does not depend on its fields is not parsed (a model response's
    # text can be long): an empty instance answers the same.
    event = kind.model_construct() if kind.due is Event.due else from_message(message).event
    return event.due(_utc(message.time))


def _is_thread(stream: str) -> bool:
    try:
        names.thread_id_of(stream)
    except ValueError:
        return False
    return True


def _utc(moment: datetime) -> datetime:
    """A time without a zone (an older or foreign writer) is UTC, as the step engine reads it."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
