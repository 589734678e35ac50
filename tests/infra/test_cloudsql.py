"""The Cloud SQL connection path, as far as it runs without Google: settings, laziness, the
pool's connections, and what a misconfiguration says.

The Google side of the connector (certificates, the instance's address) needs a project, so
it is stood in for by a connector that opens the connection to the test database the way the
real one hands psycopg its proxied socket; the pool and the database are real.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from messagedb_agent.postgres.cloudsql import CloudSqlConnector, connector_for, google_connector
from messagedb_agent.settings import Settings
from messagedb_agent.settings.storage import CloudSqlSettings
from messagedb_agent.store.client import SEARCH_PATH_OPTION

INSTANCE = "my-project:us-central1:agent-messagedb"
USER = "agent-step@my-project.iam"
ENV_NAMES = (
    "CLOUD_SQL_INSTANCE",
    "DB_IAM_USER",
    "DB_NAME",
    "CLOUD_SQL_IP_TYPE",
    "CLOUD_SQL_REFRESH_STRATEGY",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env file is read


def settings(**values: Any) -> CloudSqlSettings:
    return Settings(_env_file=None, **values).cloud_sql  # type: ignore[call-arg]


class LocalDatabaseConnector:
    """Connects to the test database where the real connector would reach Cloud SQL."""

    def __init__(self, database_url: str) -> None:
        self.target = database_url
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.closed = False

    def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any:
        self.calls.append((instance_connection_string, driver, dict(kwargs)))
        kwargs.pop("user")
        kwargs.pop("db")
        kwargs.pop("timeout", None)
        return psycopg.connect(self.target, **kwargs)

    def close(self) -> None:
        self.closed = True


# -- settings ----------------------------------------------------------------------------------


def test_without_an_instance_cloud_sql_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not settings().enabled
    assert connector_for(settings()) is None
    monkeypatch.setenv("CLOUD_SQL_INSTANCE", INSTANCE)
    monkeypatch.setenv("DB_IAM_USER", USER)
    made = connector_for(settings())
    assert made is not None
    assert made.instance == INSTANCE


@pytest.mark.parametrize(
    "name", [INSTANCE, "example.com:my-project:europe-west1:db", "p1:us-east5:i"]
)
def test_instance_connection_names_are_accepted(name: str) -> None:
    assert settings(cloud_sql_instance=name, db_iam_user=USER).cloud_sql_instance == name


@pytest.mark.parametrize(
    "name", ["agent-messagedb", "my-project/us-central1/db", "my-project:us-central1:", "a:b"]
)
def test_an_instance_name_that_is_not_a_connection_name_says_how_to_find_it(name: str) -> None:
    with pytest.raises(ValidationError, match=r"project:region:instance.*connectionName"):
        settings(cloud_sql_instance=name, db_iam_user=USER)


def test_an_instance_without_an_iam_user_names_the_setting_to_add() -> None:
    with pytest.raises(ValidationError, match=r"DB_IAM_USER is not.*my-project\.iam"):
        settings(cloud_sql_instance=INSTANCE)
    with pytest.raises(ValidationError, match="DB_IAM_USER"):
        settings(cloud_sql_instance=INSTANCE, db_iam_user="  ")


def test_a_service_account_email_becomes_its_database_user_name() -> None:
    made = settings(
        cloud_sql_instance=INSTANCE, db_iam_user="agent-step@my-project.iam.gserviceaccount.com"
    )
    assert made.db_iam_user == USER


def test_ip_type_and_refresh_strategy_ignore_case_and_refuse_unknown_values() -> None:
    made = settings(cloud_sql_ip_type="private", cloud_sql_refresh_strategy="background")
    assert (made.cloud_sql_ip_type, made.cloud_sql_refresh_strategy) == ("PRIVATE", "BACKGROUND")
    assert (settings().cloud_sql_ip_type, settings().cloud_sql_refresh_strategy) == (
        "PUBLIC",
        "LAZY",
    )
    with pytest.raises(ValidationError, match="cloud_sql_ip_type"):
        settings(cloud_sql_ip_type="vpn")


def test_the_conninfo_names_the_database_and_user_and_nothing_else() -> None:
    made = CloudSqlConnector(
        settings(cloud_sql_instance=INSTANCE, db_iam_user=USER, db_name="agents")
    )
    assert conninfo_to_dict(made.conninfo) == {"dbname": "agents", "user": USER}


# -- laziness ----------------------------------------------------------------------------------


def test_importing_the_module_loads_no_google_code() -> None:
    code = (
        "import sys, messagedb_agent.postgres.cloudsql\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('google.cloud.sql'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_connector_is_made_by_the_first_connection_and_reused(database_url: str) -> None:
    made: list[LocalDatabaseConnector] = []

    def make(_settings: CloudSqlSettings) -> LocalDatabaseConnector:
        made.append(LocalDatabaseConnector(database_url))
        return made[-1]

    connector = CloudSqlConnector(settings(cloud_sql_instance=INSTANCE, db_iam_user=USER), make)
    assert not connector.started
    assert made == []
    for _ in range(3):
        connector.connect(connector.conninfo).close()
    assert connector.started
    assert len(made) == 1
    assert len(made[0].calls) == 3
    assert connector.connection_class is connector.connection_class
    connector.close()
    assert made[0].closed
    assert not connector.started
    connector.connect(connector.conninfo).close()
    assert len(made) == 2, "a closed connector is replaced, not reused"


# -- through the pool --------------------------------------------------------------------------


def test_a_pool_configured_as_the_store_does_connects_through_the_connector(
    database_url: str,
) -> None:
    """The pool's kwargs (autocommit, search_path) reach psycopg; the address never does."""
    fake = LocalDatabaseConnector(database_url)
    connector = CloudSqlConnector(
        settings(cloud_sql_instance=INSTANCE, db_iam_user=USER, db_name="message_store"),
        lambda _settings: fake,
    )
    pool = ConnectionPool(
        connector.conninfo,
        connection_class=connector.connection_class,
        min_size=2,
        max_size=2,
        timeout=10,
        open=False,
        kwargs={"autocommit": True, "options": SEARCH_PATH_OPTION, "connect_timeout": 10},
    )
    with pool:
        pool.wait(timeout=10)
        with pool.connection() as conn:
            assert conn.autocommit
            path = conn.execute("SHOW search_path").fetchone()
            version = conn.execute("SELECT message_store_version()").fetchone()
    assert path is not None
    assert path[0].replace(" ", "") == "message_store,public"
    assert version is not None
    assert version[0]
    assert len(fake.calls) == 2
    for instance, driver, kwargs in fake.calls:
        assert (instance, driver) == (INSTANCE, "psycopg")
        assert kwargs["user"] == USER
        assert kwargs["db"] == "message_store"
        assert kwargs["timeout"] == 10
        assert isinstance(kwargs["timeout"], int)
        assert {"host", "port", "sslmode", "password", "connect_timeout"}.isdisjoint(kwargs)


def test_an_address_in_the_conninfo_is_left_to_the_connector(database_url: str) -> None:
    fake = LocalDatabaseConnector(database_url)
    connector = CloudSqlConnector(
        settings(cloud_sql_instance=INSTANCE, db_iam_user=USER), lambda _settings: fake
    )
    host = urlsplit(database_url).hostname or "localhost"
    conninfo = f"host={host} port=5433 sslmode=require password=secret user=other dbname=x"
    connector.connect(conninfo).close()
    (_instance, _driver, kwargs) = fake.calls[0]
    assert (kwargs["user"], kwargs["db"]) == ("other", "x")
    assert {"host", "port", "sslmode", "password"}.isdisjoint(kwargs)


# -- misconfiguration --------------------------------------------------------------------------


def test_missing_google_credentials_are_one_line_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    connector = CloudSqlConnector(
        settings(cloud_sql_instance=INSTANCE, db_iam_user=USER), google_connector
    )
    with pytest.raises(psycopg.OperationalError) as raised:
        connector.connect(connector.conninfo)
    message = str(raised.value)
    assert "no Google credentials" in message
    assert "gcloud auth application-default login" in message
    assert "\n" not in message
    assert not connector.started


def test_a_connector_failure_names_the_instance_and_the_roles_to_check() -> None:
    class Refusing:
        def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any:
            raise RuntimeError("403, message='Forbidden',\n url='https://sqladmin.googleapis.com'")

        def close(self) -> None:
            pass

    connector = CloudSqlConnector(
        settings(cloud_sql_instance=INSTANCE, db_iam_user=USER), lambda _settings: Refusing()
    )
    with pytest.raises(psycopg.OperationalError) as raised:
        connector.connect(connector.conninfo)
    message = str(raised.value)
    assert INSTANCE in message
    assert USER in message
    assert "403" in message
    assert "roles/cloudsql.client" in message
    assert "roles/cloudsql.instanceUser" in message
    assert "\n" not in message


def test_the_databases_own_refusal_passes_through_unchanged() -> None:
    class Database:
        def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any:
            raise psycopg.OperationalError(f'FATAL: role "{kwargs["user"]}" does not exist')

        def close(self) -> None:
            pass

    connector = CloudSqlConnector(
        settings(cloud_sql_instance=INSTANCE, db_iam_user=USER), lambda _settings: Database()
    )
    with pytest.raises(psycopg.OperationalError, match=f'FATAL: role "{USER}" does not exist'):
        connector.connect(connector.conninfo)


def test_a_connector_too_old_for_psycopg_is_named() -> None:
    class Old:
        def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any:
            return object()

        def close(self) -> None:
            pass

    connector = CloudSqlConnector(
        settings(cloud_sql_instance=INSTANCE, db_iam_user=USER), lambda _settings: Old()
    )
    with pytest.raises(psycopg.InterfaceError, match=r"1\.23 or newer"):
        connector.connect(connector.conninfo)


def test_a_connector_needs_an_instance() -> None:
    with pytest.raises(ValueError, match="CLOUD_SQL_INSTANCE is not set"):
        CloudSqlConnector(settings())


def test_the_installed_connector_speaks_psycopg() -> None:
    """The design rests on the connector's psycopg driver (1.23+); fail loudly if it goes."""
    from google.cloud.sql.connector import psycopg as connector_psycopg

    assert callable(connector_psycopg.connect)
