"""Cloud SQL through the Cloud SQL Python Connector, logging in as the function's own identity.

The connector (1.23) supports psycopg 3: psycopg cannot take a connected socket, so for each
connection the connector opens a private Unix socket, points psycopg at it and relays the bytes
over its own TLS connection to the instance. What the pool gets is an ordinary
`psycopg.Connection`, so `MessageStore` needs only a `connection_class` that connects this way
(`CloudSqlConnector.connection_class`); the conninfo it is given names just the database and
the user. IAM database authentication means no password exists anywhere: the connector
presents the service account's token.

The Google-side `Connector` is made on the first connection, not on import or construction:
making it reads credentials and starts a thread, which a cold start should pay only when it
actually needs the database. It is then kept for the life of the process, so every later
invocation on a warm instance reuses its certificates. The refresh strategy defaults to lazy,
which Google recommends where CPU is throttled between requests (Cloud Functions, Cloud Run).
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import Any, Protocol, Self, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from messagedb_agent.settings.storage import CloudSqlSettings

# Where the connection goes is the connector's business, never the conninfo's.
_NETWORK_PARAMS = ("host", "hostaddr", "port", "sslmode", "password", "passfile")


class Connector(Protocol):
    """The part of `google.cloud.sql.connector.Connector` used here."""

    def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any: ...

    def close(self) -> None: ...


ConnectorFactory = Callable[[CloudSqlSettings], Connector]


def google_connector(settings: CloudSqlSettings) -> Connector:
    """The real connector, with IAM authentication on for every connection it makes.

    Imported by name: a static import of `google.cloud.sql` would make the type checker read
    the `google.cloud` namespace from this typed package and lose the untyped Pub/Sub one.
    """
    module = importlib.import_module("google.cloud.sql.connector")
    connector: Connector = module.Connector(
        ip_type=settings.cloud_sql_ip_type,
        enable_iam_auth=True,
        refresh_strategy=settings.cloud_sql_refresh_strategy,
    )
    return connector


class CloudSqlConnector:
    """Opens psycopg connections to one Cloud SQL instance; one per process, kept warm."""

    def __init__(
        self, settings: CloudSqlSettings, make_connector: ConnectorFactory = google_connector
    ) -> None:
        if settings.cloud_sql_instance is None:
            raise ValueError("CLOUD_SQL_INSTANCE is not set, so there is no instance to connect to")
        self.settings = settings
        self.instance: str = settings.cloud_sql_instance
        self._make_connector = make_connector
        self._connector: Connector | None = None
        self._lock = threading.Lock()

    @property
    def conninfo(self) -> str:
        """What the pool is given: the database and the user, no address and no password."""
        return make_conninfo(dbname=self.settings.db_name, user=self.settings.db_iam_user or "")

    @property
    def started(self) -> bool:
        """Whether the Google-side connector exists yet (it is made by the first connection)."""
        return self._connector is not None

    def connect(self, conninfo: str = "", **kwargs: Any) -> psycopg.Connection[TupleRow]:
        """A connection as `psycopg.connect(conninfo, **kwargs)` would make, through the connector.

        Failures that are not the database's own reach the pool as `psycopg.OperationalError`
        with a sentence naming the cause and the fix, as every other connection failure does.
        """
        params: dict[str, Any] = {**conninfo_to_dict(conninfo), **kwargs}
        user = params.pop("user", None) or self.settings.db_iam_user
        dbname = params.pop("dbname", None) or self.settings.db_name
        timeout = params.pop("connect_timeout", None)
        for name in _NETWORK_PARAMS:
            params.pop(name, None)
        if timeout is not None:
            params["timeout"] = max(1, int(timeout))
        connector = self._connector_or_explain()
        try:
            connection = connector.connect(self.instance, "psycopg", user=user, db=dbname, **params)
        except psycopg.Error:
            raise  # the database answered (wrong user, missing database): its words are clearest
        except Exception as exc:
            raise psycopg.OperationalError(self._describe(exc)) from exc
        if not isinstance(connection, psycopg.Connection):
            raise psycopg.InterfaceError(
                f"the Cloud SQL connector returned {type(connection).__name__}, not a psycopg "
                "connection; cloud-sql-python-connector 1.23 or newer is needed"
            )
        return connection

    @functools.cached_property
    def connection_class(self) -> type[psycopg.Connection[TupleRow]]:
        """A `psycopg.Connection` whose `connect` goes through this connector, for the pool."""
        return _connection_class(self)

    def close(self) -> None:
        with self._lock:
            connector, self._connector = self._connector, None
        if connector is not None:
            connector.close()

    def _connector_or_explain(self) -> Connector:
        with self._lock:
            if self._connector is None:
                try:
                    self._connector = self._make_connector(self.settings)
                except Exception as exc:
                    raise psycopg.OperationalError(self._describe(exc)) from exc
            return self._connector

    def _describe(self, exc: BaseException) -> str:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if type(exc).__name__ == "DefaultCredentialsError":
            return (
                f"no Google credentials for the Cloud SQL connector ({detail}). Fix: run with "
                "a service account (Cloud Functions gives one), or `gcloud auth "
                "application-default login` on a workstation"
            )
        return (
            f"the Cloud SQL connector could not connect to {self.instance} as "
            f"{self.settings.db_iam_user} ({type(exc).__name__}: {detail}). Fix: check "
            "CLOUD_SQL_INSTANCE and CLOUD_SQL_IP_TYPE, that the Cloud SQL Admin API is enabled, "
            "and that the service account has roles/cloudsql.client and "
            "roles/cloudsql.instanceUser and is a database user of the instance"
        )


def _connection_class(connector: CloudSqlConnector) -> type[psycopg.Connection[TupleRow]]:
    class CloudSqlConnection(psycopg.Connection[TupleRow]):
        """Made by the connector, so `connect` returns a plain `psycopg.Connection`."""

        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            return cast(Self, connector.connect(conninfo, **kwargs))

    return CloudSqlConnection


def connector_for(
    settings: CloudSqlSettings, make_connector: ConnectorFactory = google_connector
) -> CloudSqlConnector | None:
    """The connector the settings ask for, or None when CLOUD_SQL_INSTANCE is unset."""
    return CloudSqlConnector(settings, make_connector) if settings.enabled else None
