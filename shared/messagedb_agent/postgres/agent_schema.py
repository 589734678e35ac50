"""The project's own objects beside Message DB, in schema `agent`: made by the installer.

One trigger announces, with `NOTIFY`, every appended event that can be the reply a request is
waiting for, on the channel `agent_thread_events` with the stream name as payload. PostgreSQL
delivers a notification only when the writing transaction commits, to every listening session,
whichever process wrote; so a waiting request wakes when its reply is durable, without polling
the thread ten times a second. Only reply types fire it, so the other writes of a step pay
nothing but the `WHEN` test. They are named here, not imported: this room sits below the
events (a test holds them equal to `projections.anchors.REPLY_TYPES`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

THREAD_EVENTS_CHANNEL = "agent_thread_events"
ANNOUNCED_TYPES = ("LLMResponseReceived", "SessionCompleted")

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
)


def apply(conn: psycopg.Connection) -> None:
    """Create or update the objects; idempotent, so every install run can apply it."""
    for statement in STATEMENTS:
        conn.execute(statement.encode())
