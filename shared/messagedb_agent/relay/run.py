"""One relay run, as Cloud Scheduler triggers it: sweep, publish, record, until caught up.

Each batch is published (and confirmed) before its position is recorded, so a crash re-sends
rather than skips. Two runs at once are safe: both may publish the same heads (steps drop the
duplicate as stale or lose the claim), and only one of them records each position, by
optimistic concurrency on the position stream, so the position never goes backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from messagedb_agent.notification import NotificationPublisher
from messagedb_agent.observability.entry_points import relay_entry
from messagedb_agent.observability.logging import get_logger
from messagedb_agent.observability.tracing import annotate
from messagedb_agent.relay.sweep import sweep
from messagedb_agent.store.client import MessageStore

log = get_logger(__name__)

DEFAULT_MAX_BATCHES = 10
DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True, slots=True)
class RelayReport:
    published: int  # notifications published (duplicates across concurrent runs included)
    position: int  # the global position this run's last sweep reached
    batches: int
    read: int  # category messages read
    lost_races: int  # batches whose position another run recorded first

    def as_json(self) -> dict[str, int]:
        return {
            "published": self.published,
            "position": self.position,
            "batches": self.batches,
            "read": self.read,
        }


@relay_entry  # a root span and a fresh logging context per run
def relay_once(
    store: MessageStore,
    publisher: NotificationPublisher,
    now: datetime,
    max_batches: int = DEFAULT_MAX_BATCHES,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RelayReport:
    """Sweep batches until one reads less than a full batch (caught up) or `max_batches`."""
    published = batches = read = lost = 0
    position = 0
    for _ in range(max_batches):
        batch = sweep(store, now, batch_size=batch_size)
        batches += 1
        read += batch.read
        if batch.notifications:
            publisher.publish(batch.notifications)
            published += len(batch.notifications)
        if not batch.record(store):
            lost += 1
        position = batch.state.position
        if batch.read < batch_size:
            break
    report = RelayReport(published, position, batches, read, lost)
    annotate({"relay.published": published, "relay.position": position, "relay.read": read})
    log.info(
        "relay done",
        published=published,
        position=position,
        batches=batches,
        read=read,
        lost_races=lost,
    )
    return report
