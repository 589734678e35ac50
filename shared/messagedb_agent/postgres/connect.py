"""Where the database comes from: DATABASE_URL when set, else the embedded server."""

from __future__ import annotations

import psycopg

from messagedb_agent.postgres import cloudsql, embedded, installer
from messagedb_agent.postgres.installer import InstallReport, Progress
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import SEARCH_PATH_OPTION, MessageStore


def database_url(settings: Settings, *, keep_running: bool = False) -> str:
    if settings.database.database_url:
        return settings.database.database_url
    local = settings.local
    return embedded.start(local.home, local.messagedb_database, keep_running=keep_running)


def ensure_installed(
    url: str, settings: Settings, *, repair: bool = False, progress: Progress | None = None
) -> InstallReport:
    tarball = installer.fetch_tarball(
        settings.local.home / "cache", settings.local.messagedb_tarball, progress=progress
    )
    return installer.install(url, installer.load_package(tarball), repair=repair, progress=progress)


def open_store(settings: Settings, url: str | None = None) -> MessageStore:
    """A pool on DATABASE_URL, on Cloud SQL through the connector (CLOUD_SQL_INSTANCE), or on
    the embedded server; DATABASE_URL wins when both are set.

    Each connection asks for Message DB's search_path in its startup options unless
    DB_SEARCH_PATH_OPTION is off (behind a pooler that refuses startup options); then the
    database role's own setting, which the installer job makes, applies."""
    database = settings.database
    cloud_sql = None if url or database.database_url else cloudsql.connector_for(settings.cloud_sql)
    store = MessageStore(
        cloud_sql.conninfo if cloud_sql else url or database_url(settings),
        min_size=database.db_pool_min_size,
        max_size=database.db_pool_max_size,
        timeout=database.db_connect_timeout,
        wait_timeout=database.db_wait_timeout,
        connection_class=cloud_sql.connection_class if cloud_sql else psycopg.Connection,
        options=SEARCH_PATH_OPTION if database.db_search_path_option else None,
    )
    return store.open()
