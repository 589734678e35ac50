"""The installer makes the `agent` tables (idempotent answers, rate limits) and grants their
rows to Message DB's role, so a function's database user, a member of that role and nothing
more, can use them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

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


def _as(database_url: str, role: str, statement: str, params: dict[str, Any] | None = None) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        try:
            conn.execute(statement, params)
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


def test_a_member_of_message_store_takes_rate_limit_tokens_without_creating_anything(
    database_url: str, member: str
) -> None:
    from messagedb_agent.api.rate_limit import _TAKE

    params = {"user": f"u-{member}", "burst": 2.0, "per_second": 1.0}
    _as(database_url, member, _TAKE, params)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(database_url, member, "ALTER TABLE agent.rate_limits ADD COLUMN x int")
