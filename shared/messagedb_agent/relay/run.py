"""Relay runs, as Cloud Scheduler triggers them: every thread category swept until caught up.

A pass sweeps every category that can hold threads (`thread_categories`: the legacy `thread`
and each shard `thread_00` ..), in parallel on a few threads, each from its own cursor in its
own position stream. A category is swept batch after batch while batches come back full,
until it has caught up or the pass's time budget (RELAY_BUDGET_SECONDS) is spent; then the
pass reports the lag it leaves: per category, the global positions between the category's
newest message and the cursor, and the age of the oldest message not yet read.

Each batch is published (and confirmed) before its position is recorded, so a crash re-sends
rather than skips. Two runs at once are safe: both may publish the same heads (steps drop the
duplicate as stale or lose the claim), and only one of them records each position, by
optimistic concurrency on the position stream, so the position never goes backwards.

A scheduler calls at most once a minute, yet a lease or a backoff must be taken over within
seconds of running out. So one call may keep passing (RELAY_LOOP_SECONDS, a pass every
RELAY_TICK_SECONDS) for most of the minute, and the next call takes over: with one instance
(max instances 1) the relay is as good as always on. A loop of 0 is one pass per call.

What the relay re-announces, and why the dead-letter topic is then only informational, is
told in relay/sweep.py.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from messagedb_agent.notification import NotificationPublisher
from messagedb_agent.observability.entry_points import relay_entry
from messagedb_agent.observability.logging import get_logger
from messagedb_agent.observability.tracing import annotate
from messagedb_agent.projections.next_step import Policy
from messagedb_agent.relay.sweep import sweep
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore

if TYPE_CHECKING:
    from messagedb_agent.settings import Settings

log = get_logger(__name__)

DEFAULT_BATCH_SIZE = 1000
DEFAULT_BUDGET_SECONDS = 40.0
MAX_WORKERS = 4  # parallel categories; never more than the store's pool has connections

_LAG = """
SELECT
  (SELECT global_position FROM message_store.messages
    WHERE message_store.category(stream_name) = %(category)s
    ORDER BY global_position DESC LIMIT 1),
  (SELECT extract(epoch FROM (now() AT TIME ZONE 'utc') - time)
     FROM message_store.messages
    WHERE message_store.category(stream_name) = %(category)s
      AND global_position > %(cursor)s
    ORDER BY global_position LIMIT 1)
"""


@dataclass(frozen=True, slots=True)
class ShardReport:
    """One category's part of a pass."""

    category: str
    published: int
    position: int  # the cursor after the pass
    batches: int
    read: int
    lost_races: int
    caught_up: bool
    lag_messages: int  # the category's newest global position minus the cursor
    lag_seconds: float  # how long the oldest message not yet read has waited

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "read": self.read,
            "published": self.published,
            "lag_messages": self.lag_messages,
            "lag_seconds": self.lag_seconds,
        }


@dataclass(frozen=True, slots=True)
class RelayReport:
    published: int  # notifications published (duplicates across concurrent runs included)
    position: int  # the furthest cursor of any category (global positions span categories)
    batches: int
    read: int  # category messages read
    lost_races: int  # batches whose position another run recorded first
    lag_messages: int = 0  # summed over the categories, after the (last) pass
    lag_seconds: float = 0.0  # the oldest unread message's wait, over the categories
    caught_up: bool = True
    passes: int = 1
    shards: tuple[ShardReport, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "position": self.position,
            "batches": self.batches,
            "read": self.read,
            "passes": self.passes,
            "caught_up": self.caught_up,
            "lag": {
                "messages": self.lag_messages,
                "seconds": self.lag_seconds,
                "shards": {s.category: s.as_json() for s in self.shards},
            },
        }


def policy_of(settings: Settings) -> Policy:
    """The step function's limits, so the relay judges "needs a step" as the step does."""
    limits = settings.engine
    return Policy(
        max_iterations=limits.max_iterations,
        max_llm_attempts=limits.max_llm_attempts,
        max_tool_attempts=limits.max_tool_attempts,
        max_delivery_attempts=settings.callbacks.max_delivery_attempts,
    )


def relay(
    store: MessageStore,
    publisher: NotificationPublisher,
    settings: Settings,
    now: datetime | None = None,
) -> RelayReport:
    """What the relay function runs per call: its settings' categories, budget and loop.

    Given a `now` (a test's clock), one pass at that time."""
    categories = names.thread_categories(settings.threads.thread_shards)
    options = settings.relay
    if now is not None:
        return relay_once(
            store,
            publisher,
            now,
            categories=categories,
            budget_seconds=options.relay_budget_seconds,
            policy=policy_of(settings),
        )
    return relay_loop(
        store,
        publisher,
        loop_seconds=options.relay_loop_seconds,
        tick_seconds=options.relay_tick_seconds,
        budget_seconds=options.relay_budget_seconds,
        categories=categories,
        policy=policy_of(settings),
    )


def relay_loop(
    store: MessageStore,
    publisher: NotificationPublisher,
    *,
    loop_seconds: float = 0.0,
    tick_seconds: float = 2.0,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    categories: Sequence[str] | None = None,
    policy: Policy | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RelayReport:
    """Pass, pause `tick_seconds`, pass again, until `loop_seconds` are used up (0: one pass).

    No pass starts after the loop's end, and each is given what is left of the loop (at most
    its budget), so a call lasts about max(loop, budget) plus one batch."""
    end = clock() + loop_seconds
    reports: list[RelayReport] = []
    while True:
        left = end - clock()
        budget = budget_seconds if not reports else max(0.0, min(budget_seconds, left))
        reports.append(
            relay_once(
                store,
                publisher,
                wall(),
                categories=categories,
                budget_seconds=budget,
                policy=policy,
                batch_size=batch_size,
                clock=clock,
            )
        )
        if clock() + tick_seconds >= end:
            break
        sleep(tick_seconds)
    if len(reports) == 1:
        return reports[0]
    last = reports[-1]
    total = RelayReport(
        published=sum(r.published for r in reports),
        position=last.position,
        batches=sum(r.batches for r in reports),
        read=sum(r.read for r in reports),
        lost_races=sum(r.lost_races for r in reports),
        lag_messages=last.lag_messages,
        lag_seconds=last.lag_seconds,
        caught_up=last.caught_up,
        passes=len(reports),
        shards=last.shards,
    )
    log.info(
        "relay loop done",
        passes=total.passes,
        published=total.published,
        read=total.read,
        lag_messages=total.lag_messages,
        lag_seconds=total.lag_seconds,
    )
    return total


@relay_entry  # a root span and a fresh logging context per pass
def relay_once(
    store: MessageStore,
    publisher: NotificationPublisher,
    now: datetime,
    max_batches: int | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    categories: Sequence[str] | None = None,
    policy: Policy | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RelayReport:
    """One pass: each category swept while its batches come back full, until it has caught
    up, the budget is spent or (for tests) it read `max_batches` batches; at least one batch
    each."""
    chosen = tuple(categories or names.thread_categories(names.DEFAULT_THREAD_SHARDS))
    deadline = clock() + budget_seconds

    def one(category: str) -> ShardReport:
        return _sweep_category(
            store, publisher, now, category, deadline, clock, max_batches, batch_size, policy
        )

    workers = max(1, min(MAX_WORKERS, len(chosen), store.pool.max_size))
    if workers == 1:
        shards = [one(category) for category in chosen]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="relay") as pool:
            # each task in a copy of this context: its spans and log fields are this pass's
            futures = [pool.submit(contextvars.copy_context().run, one, c) for c in chosen]
            shards = [future.result() for future in futures]
    report = RelayReport(
        published=sum(s.published for s in shards),
        position=max((s.position for s in shards), default=0),
        batches=sum(s.batches for s in shards),
        read=sum(s.read for s in shards),
        lost_races=sum(s.lost_races for s in shards),
        lag_messages=sum(s.lag_messages for s in shards),
        lag_seconds=max((s.lag_seconds for s in shards), default=0.0),
        caught_up=all(s.caught_up for s in shards),
        shards=tuple(shards),
    )
    behind = {s.category: s.lag_messages for s in shards if s.lag_messages}
    annotate(
        {
            "relay.published": report.published,
            "relay.position": report.position,
            "relay.read": report.read,
            "relay.categories": len(shards),
            "relay.caught_up": report.caught_up,
            "relay.lag.messages": report.lag_messages,
            "relay.lag.seconds": report.lag_seconds,
        }
    )
    # A looping relay passes every few seconds: a pass that found nothing is logged at DEBUG.
    idle = not (report.read or report.published or report.lag_messages)
    (log.debug if idle else log.info)(
        "relay done",
        published=report.published,
        position=report.position,
        batches=report.batches,
        read=report.read,
        lost_races=report.lost_races,
        caught_up=report.caught_up,
        lag_messages=report.lag_messages,
        lag_seconds=report.lag_seconds,
        lag_by_category=behind,
    )
    return report


def _sweep_category(
    store: MessageStore,
    publisher: NotificationPublisher,
    now: datetime,
    category: str,
    deadline: float,
    clock: Callable[[], float],
    max_batches: int | None,
    batch_size: int,
    policy: Policy | None,
) -> ShardReport:
    published = batches = read = lost = 0
    while True:
        batch = sweep(store, now, category=category, batch_size=batch_size, policy=policy)
        batches += 1
        read += batch.read
        if batch.notifications:
            publisher.publish(batch.notifications)
            published += len(batch.notifications)
        if not batch.record(store):
            lost += 1
        position = batch.state.position
        caught_up = batch.read < batch_size
        if caught_up or clock() >= deadline:
            break
        if max_batches is not None and batches >= max_batches:
            break
    lag_messages, lag_seconds = lag(store, category, position)
    return ShardReport(
        category,
        published,
        position,
        batches,
        read,
        lost,
        caught_up=lag_messages == 0,
        lag_messages=lag_messages,
        lag_seconds=lag_seconds,
    )


def lag(store: MessageStore, category: str, cursor: int) -> tuple[int, float]:
    """(global positions from `cursor` to the category's newest message, the age in seconds of
    the oldest message after `cursor`); (0, 0.0) when nothing is left to read."""
    names.validate_category(category)
    with store.connection() as conn:
        row = conn.execute(_LAG, {"category": category, "cursor": cursor}).fetchone()
    head, age = row if row is not None else (None, None)
    if head is None or head <= cursor:
        return 0, 0.0
    return int(head) - cursor, round(max(0.0, float(age or 0.0)), 3)
