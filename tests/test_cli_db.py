"""`messagedb-agent db ...`: installs, reports status, and fails in one line, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import Result
from typer.testing import CliRunner

from messagedb_agent.cli import app
from messagedb_agent.postgres import embedded
from messagedb_agent.postgres.installer import VERSION
from messagedb_agent.settings import Settings


class Invoke(Protocol):
    def __call__(self, *args: str, **env: str | None) -> Result: ...


@pytest.fixture
def run(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run the CLI in an empty folder (no `.env`) with only the given settings in force."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, **env: str | None) -> Result:
        base: dict[str, str | None] = {
            "MESSAGEDB_AGENT_HOME": str(settings.local.home),
            "MESSAGEDB_TARBALL": None,
            "DB_CONNECT_TIMEOUT": "1",
        }
        return runner.invoke(app, list(args), env=base | env)

    return invoke


@pytest.fixture
def fresh_url(server_url: str) -> Iterator[str]:
    name = f"cli_{uuid.uuid4().hex[:12]}"
    embedded.create_database(server_url, name)
    yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    embedded.drop_database(server_url, name)


@pytest.fixture
def closed_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://postgres:s3cret@127.0.0.1:{port}/postgres"


def _one_error_line(result: Result) -> str:
    """The single `error:` line a failed command printed, after checking it printed nothing else."""
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_db_install_twice_installs_then_changes_nothing(run: Invoke, fresh_url: str) -> None:
    first = run("db", "install", DATABASE_URL=fresh_url)
    assert first.exit_code == 0, first.output
    database = urlsplit(fresh_url).path.lstrip("/")
    assert first.stdout.startswith(
        f"Installed Message DB {VERSION} (schema 1.3.0) into {database}: "
    )
    assert "» write_message" in first.stderr

    second = run("db", "install", "--quiet", DATABASE_URL=fresh_url)
    assert second.exit_code == 0, second.output
    assert second.stdout == (
        f"Message DB {VERSION} (schema 1.3.0) is already installed in {database}; "
        "nothing changed.\n"
    )
    assert second.stderr == ""


def test_db_status_reports_versions_with_the_password_hidden(
    run: Invoke, database_url: str
) -> None:
    url = database_url.replace("postgres:@", "postgres:hidden@")
    result = run("db", "status", DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: PostgreSQL ")
    assert "Message DB schema 1.3.0 at " in result.stdout
    assert "hidden" not in result.stdout


def test_db_install_on_half_installed_database_points_at_repair(
    run: Invoke, fresh_url: str
) -> None:
    assert run("db", "install", "-q", DATABASE_URL=fresh_url).exit_code == 0
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION message_store.stream_version(varchar)")
    refused = run("db", "install", "-q", DATABASE_URL=fresh_url)
    assert refused.exit_code == 1
    line = _one_error_line(refused)
    assert "half-installed" in line
    assert "function stream_version" in line
    assert "--repair" in line
    repaired = run("db", "install", "-q", "--repair", DATABASE_URL=fresh_url)
    assert repaired.exit_code == 0, repaired.output
    assert run("db", "status", DATABASE_URL=fresh_url).exit_code == 0


@pytest.mark.parametrize("command", ["install", "status"])
def test_unreachable_database_fails_in_one_line(run: Invoke, closed_url: str, command: str) -> None:
    result = run("db", command, DATABASE_URL=closed_url)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:" in line
    assert "Fix:" in line
    assert "s3cret" not in result.output


def test_missing_database_fails_in_one_line(run: Invoke, server_url: str) -> None:
    url = urlunsplit(urlsplit(server_url)._replace(path="/no_such_database_here"))
    result = run("db", "status", DATABASE_URL=url)
    line = _one_error_line(result)
    assert "no_such_database_here" in line
    assert "does not exist" in line


@pytest.mark.parametrize("command", ["install", "status", "stop"])
def test_non_postgres_database_url_is_one_line_naming_the_variable(
    run: Invoke, command: str
) -> None:
    result = run("db", command, DATABASE_URL="mysql://root:pw@localhost/db")
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert line == (
        "error: DATABASE_URL: DATABASE_URL must start with postgresql:// "
        "(e.g. postgresql://user:pass@host:5432/db)"
    )


def test_each_bad_variable_gets_its_own_line(run: Invoke) -> None:
    result = run(
        "db",
        "status",
        DATABASE_URL="sqlite:///x.db",
        DB_POOL_MAX_SIZE="lots",
        DB_CONNECT_TIMEOUT="-1",
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = sorted(result.stderr.splitlines())
    assert [line.split(":")[1].strip() for line in lines] == [
        "DATABASE_URL",
        "DB_CONNECT_TIMEOUT",
        "DB_POOL_MAX_SIZE",
    ]
    assert all(line.startswith("error: ") for line in lines)
    assert "lots" not in result.stderr


def test_installed_command_prints_only_the_error_line(
    closed_url: str, settings: Settings, tmp_path: Path
) -> None:
    """Outside the test runner no logging is configured, so driver warnings would show here."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MESSAGEDB_AGENT_HOME": str(settings.local.home),
        "DATABASE_URL": closed_url,
        "DB_CONNECT_TIMEOUT": "1",
    }
    script = Path(sys.executable).with_name("messagedb-agent")
    done = subprocess.run(
        [str(script), "db", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: cannot reach PostgreSQL at ")
