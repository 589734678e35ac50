"""Per-user write limits shared by every instance: a token bucket kept in PostgreSQL.

Each request is one atomic upsert that refills the user's bucket for the time elapsed, takes a
token if there is one, and reports whether it did; concurrent requests of the same user queue
on the row lock, so no two instances can spend the same token. The table is operational
state, not domain history, so it lives beside Message DB (schema `agent`), not in a stream; the
installer makes it (`postgres/agent_schema.py`), so no function needs the right to create.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import psycopg

    from messagedb_agent.store.client import MessageStore

T = TypeVar("T")

# The refill is computed once (`r`): what was left, plus the rate times the time elapsed since
# the last request, capped at the burst; a token is taken only if a whole one is there.
_TAKE = """
INSERT INTO agent.rate_limits AS b (user_id, tokens, updated_at, allowed)
VALUES (%(user)s, %(burst)s - 1, now(), true)
ON CONFLICT (user_id) DO UPDATE SET (tokens, updated_at, allowed) = (
    SELECT CASE WHEN r >= 1 THEN r - 1 ELSE r END, GREATEST(b.updated_at, now()), r >= 1
    FROM (
        SELECT LEAST(
            %(burst)s,
            b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * %(per_second)s
        ) AS r
    ) AS refill
)
RETURNING allowed, tokens
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds until a token is back, when refused


class RateLimiter:
    """`per_minute` requests per user on average, up to `burst` at once."""

    def __init__(self, store: MessageStore, per_minute: int, burst: int) -> None:
        self.store = store
        self.per_second = per_minute / 60.0
        self.burst = float(burst)

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def take(self, user: str) -> Decision:
        if not self.enabled:
            return Decision(True)
        params = {"user": user, "burst": self.burst, "per_second": self.per_second}
        row = self._execute(lambda conn: conn.execute(_TAKE, params).fetchone())
        assert row is not None
        allowed, tokens = bool(row[0]), float(row[1])
        if allowed:
            return Decision(True)
        return Decision(False, max(1, math.ceil((1.0 - tokens) / self.per_second)))

    def _execute(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Through the store's own connections: its wait timeout, its one-line errors, and
        its refusal at once while the database is known to be down. A missing table is the
        service not set up yet (503), never a fault of the request."""
        from messagedb_agent.postgres.agent_schema import installed

        with installed("agent.rate_limits"), self.store.connection() as conn:
            return work(conn)
