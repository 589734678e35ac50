"""The installer makes `agent.idempotent_responses` and grants its rows to Message DB's role,
so a function's database user, a member of that role and nothing more, can use it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from messagedb_agent.postgres import agent_schema


@pytest.fixture
def member(database_url: str) -> Iterator[str]:
    """A role with no privilege of its own, made a `message_store` member as the installer job
    makes each function's user (deploy/database_users.py)."""
    role = f"fn-{uuid.uuid4().hex[:8]}@my-project.iam"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT message_store TO {}").format(sql.Identifier(role)))
    yield role
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _as(database_url: str, role: str, statement: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        try:
            conn.execute(statement)
        finally:
            conn.rollback()


def test_applying_the_schema_again_changes_nothing(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        agent_schema.apply(conn)
        agent_schema.apply(conn)
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'agent'"
            " AND tablename = 'idempotent_responses' ORDER BY indexname"
        ).fetchall()

    assert indexes == [("idempotent_responses_expires_at",), ("idempotent_responses_pkey",)]


def test_a_member_of_message_store_uses_the_rows_and_cannot_change_the_table(
    database_url: str, member: str
) -> None:
    _as(
        database_url,
        member,
        "INSERT INTO agent.idempotent_responses"
        " (key, request_fingerprint, status, body, expires_at)"
        " VALUES (gen_random_uuid()::text, 'f', 201, '{}', now() + interval '1 day')",
    )
    _as(database_url, member, "SELECT * FROM agent.idempotent_responses LIMIT 1")
    _as(database_url, member, "UPDATE agent.idempotent_responses SET status = 200 WHERE false")
    _as(database_url, member, "DELETE FROM agent.idempotent_responses WHERE false")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(database_url, member, "ALTER TABLE agent.idempotent_responses ADD COLUMN x int")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(database_url, member, "CREATE TABLE agent.probe (x int)")
