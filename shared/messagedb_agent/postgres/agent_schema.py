"""The project's own objects beside Message DB, in schema `agent`: made by the installer.

One trigger announces, with `NOTIFY`, every appended event that can end a request's wait for
a reply (a reply, or a tool call that now waits for its owner's approval), on the channel `agent_thread_events` with the stream name as payload. PostgreSQL
delivers a notification only when the writing transaction commits, to every listening session,
whichever process wrote; so a waiting request wakes when its reply is durable, without polling
the thread ten times a second. Only those types fire it, so the other writes of a step pay
nothing but the `WHEN` test. They are named here, not imported: this room sits below the
events (a test holds them equal to `projections.anchors.WAKE_TYPES`).

`agent.rate_limits` holds each user's token bucket (`api/rate_limit.py`), and
`agent.idempotent_responses` keeps the answer to each POST that carried an `Idempotency-Key`
until it expires (`api/idempotency.py`): operational state with an expiry, not a fact for the
log. The installer creates both (it runs as the database's owner, before any function) and
grants their rows to Message DB's `message_store` role, which every function's database user is
made a member of (`deploy/database_users.py`); so no function needs to create anything, and
none may alter the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

THREAD_EVENTS_CHANNEL = "agent_thread_events"
ANNOUNCED_TYPES = ("LLMResponseReceived", "SessionCompleted", "ToolApprovalRequested")
FUNCTIONS_ROLE = "message_store"  # Message DB's role; the functions' users are its members

_TYPES = ", ".join(f"'{name}'" for name in ANNOUNCED_TYPES)
STATEMENTS = (
    "CREATE SCHEMA IF NOT EXISTS agent",
    f"""CREATE OR REPLACE FUNCTION agent.announce_thread_event() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{THREAD_EVENTS_CHANNEL}', NEW.stream_name);
            RETURN NULL;
        END
        $$""",
    f"""CREATE OR REPLACE TRIGGER agent_announce_thread_event
        AFTER INSERT ON message_store.messages
        FOR EACH ROW WHEN (NEW.type IN ({_TYPES}))
        EXECUTE FUNCTION agent.announce_thread_event()""",
    """CREATE TABLE IF NOT EXISTS agent.idempotent_responses (
        key text PRIMARY KEY,
        request_fingerprint text NOT NULL,
        status smallint NOT NULL,
        body jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS idempotent_responses_expires_at
        ON agent.idempotent_responses (expires_at)""",
    """CREATE TABLE IF NOT EXISTS agent.rate_limits (
        user_id text PRIMARY KEY,
        tokens double precision NOT NULL,
        updated_at timestamptz NOT NULL,
        allowed boolean NOT NULL
    )""",
    f"GRANT USAGE ON SCHEMA agent TO {FUNCTIONS_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON agent.idempotent_responses TO {FUNCTIONS_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE ON agent.rate_limits TO {FUNCTIONS_ROLE}",
)


def apply(conn: psycopg.Connection) -> None:
    """Create or update the objects; idempotent, so every install run can apply it."""
    for statement in STATEMENTS:
        conn.execute(statement.encode())


@contextmanager
def installed(table: str) -> Iterator[None]:
    """Use `table` (one of this schema's): missing, it is the service not set up yet (the new
    code runs before the installer job), so the store's own unavailable error, a 503 at the
    API, never a fault of the request."""
    import psycopg  # the driver: loaded only once a caller uses the database anyway

    from messagedb_agent.store.errors import StoreError, StoreUnavailableError

    try:
        yield
    except (psycopg.errors.UndefinedTable, StoreError) as exc:
        cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
        if not isinstance(cause, psycopg.errors.UndefinedTable):
            raise
        raise StoreUnavailableError(
            f"the table {table} does not exist yet: "
            "run `messagedb-agent db install` (the installer job)"
        ) from exc
