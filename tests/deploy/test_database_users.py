"""The installer job's grants, against the real Message DB: what an IAM user may do after them,
logged in with nothing in its connection string but its name."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from messagedb_agent.deploy.database_users import SEARCH_PATH, GrantError, grant
from messagedb_agent.store.client import SEARCH_PATH_OPTION


@pytest.fixture
def iam_users(database_url: str) -> Iterator[list[str]]:
    """Two login-less roles named as Cloud SQL names IAM users; dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    users = [f"agent-ingest-{suffix}@my-project.iam", f"agent-step-{suffix}@my-project.iam"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for user in users:
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(user)))
    yield users
    with psycopg.connect(database_url, autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        for user in users:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(user)))
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
                    sql.Identifier(database[0]), sql.Identifier(user)
                )
            )
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def _as(database_url: str, user: str, statement: str) -> None:
    """Run one statement with `user`'s privileges (SET ROLE), in a transaction rolled back,
    on a connection set up as the store's pool sets up its own."""
    with psycopg.connect(database_url, options=SEARCH_PATH_OPTION) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(user)))
        try:
            conn.execute(statement)
        finally:
            conn.rollback()


def test_a_granted_user_can_write_and_read_messages(
    database_url: str, iam_users: list[str]
) -> None:
    ingest, step = iam_users
    write = "SELECT message_store.write_message(gen_random_uuid()::text, 'probe-1', 'Probed', '{}')"
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(database_url, step, write)
    report = grant(database_url, [ingest, step], [ingest])
    assert f"{step} joins message_store" in report.granted
    _as(database_url, step, write)
    _as(database_url, step, "SELECT * FROM message_store.get_stream_messages('probe-1')")


def test_only_the_schema_creator_may_create_schemas(
    database_url: str, iam_users: list[str]
) -> None:
    ingest, step = iam_users
    grant(database_url, [ingest, step], [ingest])
    _as(database_url, ingest, "CREATE SCHEMA IF NOT EXISTS agent_probe")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(database_url, step, "CREATE SCHEMA agent_probe")


def test_granting_again_changes_nothing(database_url: str, iam_users: list[str]) -> None:
    ingest, step = iam_users
    first = grant(database_url, [ingest, step], [ingest])
    assert len(first.granted) == 5  # two memberships, two search paths, one schema creator
    second = grant(database_url, [ingest, step], [ingest])
    assert second.granted == []
    assert second.summary().endswith("nothing to change")
    assert len(second.unchanged) == 5


# -- search_path: on the role, so no connection option is needed ------------------------------


PASSWORD = "probe-password"  # the embedded server trusts local logins; a container asks


@pytest.fixture
def login_user(database_url: str) -> Iterator[str]:
    """A role that can log in (as Cloud SQL's IAM users can), dropped afterwards."""
    user = f"agent-relay-{uuid.uuid4().hex[:8]}@my-project.iam"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(PASSWORD)
            )
        )
    yield user
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(user)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def _login(database_url: str, user: str) -> psycopg.Connection:
    """A session of `user` with no startup options, as through a transaction-mode pooler."""
    conninfo = make_conninfo(database_url, user=user, password=PASSWORD, options="")
    return psycopg.connect(conninfo, autocommit=True)


def test_a_granted_user_writes_without_a_search_path_option(
    database_url: str, login_user: str
) -> None:
    with _login(database_url, login_user) as conn:
        before = conn.execute("SHOW search_path").fetchone()
    assert before is not None
    assert "message_store" not in before[0]
    report = grant(database_url, [login_user])
    assert f"{login_user} gets search_path {SEARCH_PATH}" in report.granted
    with _login(database_url, login_user) as conn:
        path = conn.execute("SHOW search_path").fetchone()
        # write_message calls acquire_lock and inserts into messages, both unqualified
        position = conn.execute(
            "SELECT message_store.write_message(gen_random_uuid()::text, 'probe-2', 'P', '{}')"
        ).fetchone()
    assert path is not None
    assert path[0] == SEARCH_PATH
    assert position == (0,)


def test_the_search_path_is_set_for_this_database_only(database_url: str, login_user: str) -> None:
    grant(database_url, [login_user])
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT d.datname, s.setconfig FROM pg_db_role_setting s"
            " JOIN pg_database d ON d.oid = s.setdatabase"
            " WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            (login_user,),
        ).fetchall()
        database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    assert rows == [(database[0], [f"search_path={SEARCH_PATH}"])]


def test_a_user_that_does_not_exist_is_named_with_the_fix(database_url: str) -> None:
    with pytest.raises(GrantError, match=r"ghost@my-project\.iam does not exist.*google_sql_user"):
        grant(database_url, ["ghost@my-project.iam"])


def test_an_unreachable_database_is_one_line() -> None:
    with pytest.raises(GrantError) as raised:
        grant("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", ["x@p.iam"])
    assert "\n" not in str(raised.value)
    assert "127.0.0.1" in str(raised.value)


def test_the_command_line_grants_what_the_installer_job_asks(
    database_url: str, iam_users: list[str]
) -> None:
    ingest, step = iam_users
    command = [sys.executable, "-m", "messagedb_agent.deploy.database_users"]
    env = {**os.environ, "DATABASE_URL": database_url}
    args = ["--member", ingest, "--member", step, "--schema-creator", ingest]
    result = subprocess.run(
        command + args, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"{step} joins message_store" in result.stdout
    missing = subprocess.run(
        [*command, "--member", "ghost@p.iam"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: database user ghost@p.iam does not exist")
