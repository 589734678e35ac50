"""open_store: the pool's startup options follow DB_SEARCH_PATH_OPTION, and either way a
function's session gets Message DB's search_path (from the option, or from its role)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from messagedb_agent.deploy.database_users import SEARCH_PATH, grant
from messagedb_agent.postgres.connect import open_store
from messagedb_agent.settings import Settings

PASSWORD = "probe-password"  # the embedded server trusts local logins; a container asks


def _as_user(url: str, user: str) -> str:
    """`url` logging in as `user`."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{PASSWORD}@{host}"))


def _search_path(settings: Settings, url: str) -> str:
    with open_store(settings, url) as store, store.connection() as conn:
        row = conn.execute("SHOW search_path").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def function_user(database_url: str) -> Iterator[str]:
    """A login role named as Cloud SQL names a function's IAM user, granted as the installer
    job grants it."""
    user = f"agent-step-{uuid.uuid4().hex[:8]}@my-project.iam"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(PASSWORD)
            )
        )
    grant(database_url, [user])
    yield user
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(user)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def test_local_connections_keep_sending_the_search_path(database_url: str) -> None:
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    assert settings.database.db_search_path_option
    assert _search_path(settings, database_url).replace(" ", "") == "message_store,public"


def test_without_the_option_the_role_gives_it(database_url: str, function_user: str) -> None:
    url = _as_user(database_url, function_user)
    settings = Settings(_env_file=None, database_url=url, db_search_path_option=False)  # type: ignore[call-arg]
    assert _search_path(settings, url) == SEARCH_PATH
    with open_store(settings, url) as store:
        stream = f"thread_00-{uuid.uuid4()}"
        assert store.write_message(None, stream, "Probed", {}) == 0


def test_without_the_option_nothing_is_sent(database_url: str) -> None:
    """The administrator has no role setting: the server's default shows the option is off."""
    settings = Settings(_env_file=None, database_url=database_url, db_search_path_option=False)  # type: ignore[call-arg]
    assert "message_store" not in _search_path(settings, database_url)
