"""Installs the real Message DB, from its npm package, into a PostgreSQL database.

The package is fetched with `npm pack` (so npm's own registry configuration applies), checked
against the sha512 integrity pinned below, and cached in the project-local home folder. Its
SQL files are applied in the order of the package's own `install.sh` and `install-*.sh`
scripts, parsed from those scripts so the order always follows the package. The whole install
runs in one transaction: it either completes or leaves the database untouched.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors

from messagedb_agent.postgres import agent_schema
from messagedb_agent.store.diagnosis import describe_connection_error
from messagedb_agent.store.errors import (
    NotInstalledError,
    StoreError,
    StoreUnavailableError,
    TarballIntegrityError,
)

PACKAGE = "@eventide/message-db"
VERSION = "1.3.1"
INTEGRITY = "sha512-n3hdE5YAZNXTr2HK9gG0GJ6dusgdE544LTvS+21/yOEHBvNuUzNmXXw5vS05vpe6RSuhzTRy5Wg0q7c1VfJg+A=="
TARBALL_NAME = f"eventide-message-db-{VERSION}.tgz"
SEARCH_PATH = "SET LOCAL search_path TO message_store, public"
INSTALL_LOCK_KEY = 0x6D64625F696E7374  # "mdb_inst": serializes installs into one database

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Package:
    """The SQL files of the package, in install order, read straight from the tarball."""

    version: str
    files: dict[str, str]
    function_files: list[str]
    index_files: list[str]
    view_files: list[str]
    privilege_files: list[str]

    def sql(self, rel: str) -> str:
        return self.files[rel]

    @property
    def function_names(self) -> list[str]:
        names: list[str] = []
        for rel in self.function_files:
            names += re.findall(r"FUNCTION\s+message_store\.(\w+)\s*\(", self.files[rel])
        return names

    @property
    def index_names(self) -> list[str]:
        names: list[str] = []
        for rel in self.index_files:
            names += re.findall(r"CREATE (?:UNIQUE )?INDEX (\w+)", self.files[rel])
        return names

    @property
    def view_names(self) -> list[str]:
        names: list[str] = []
        for rel in self.view_files:
            names += re.findall(r"VIEW\s+message_store\.(\w+)", self.files[rel])
        return names


@dataclass
class InstallReport:
    database: str
    version: str
    changed: bool
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.changed:
            return (
                f"Message DB {self.version} is already installed in {self.database}; "
                "nothing changed."
            )
        extra = f" (skipped: {'; '.join(self.skipped)})" if self.skipped else ""
        return (
            f"Installed Message DB {self.version} into {self.database}: "
            f"{len(self.applied)} SQL files applied{extra}."
        )


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def fetch_tarball(
    cache_dir: Path, tarball: Path | None = None, progress: Progress | None = None
) -> Path:
    """The verified package tarball: the given file, the cached one, or a fresh `npm pack`."""
    say = progress or (lambda _msg: None)
    if tarball is not None:
        if not tarball.is_file():
            raise StoreError(
                f"MESSAGEDB_TARBALL={tarball} does not exist. Fix: point it at the .tgz file."
            )
        _verify(tarball, source="MESSAGEDB_TARBALL")
        return tarball
    cached = cache_dir / TARBALL_NAME
    if cached.is_file():
        _verify(cached, source="the cached package")
        return cached
    npm = shutil.which("npm")
    if npm is None:
        raise StoreError(
            "npm is not installed, so Message DB cannot be fetched. "
            f"Fix: install Node.js, or download {PACKAGE}@{VERSION} and set MESSAGEDB_TARBALL."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    say(f"» fetching {PACKAGE}@{VERSION} with npm pack")
    result = subprocess.run(
        [npm, "pack", f"{PACKAGE}@{VERSION}", "--silent", "--pack-destination", str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 or not cached.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit code {result.returncode}"
        raise StoreError(
            f"npm pack {PACKAGE}@{VERSION} failed: {reason}. "
            "Fix: check npm's registry access, or set MESSAGEDB_TARBALL to a local copy."
        )
    try:
        _verify(cached, source="the downloaded package")
    except TarballIntegrityError:
        cached.unlink(missing_ok=True)
        raise
    return cached


def _verify(path: Path, *, source: str) -> None:
    actual = integrity_of(path)
    if actual != INTEGRITY:
        raise TarballIntegrityError(
            f"{source} ({path}) has integrity {actual[:24]}…, expected {INTEGRITY[:24]}… "
            f"for {PACKAGE}@{VERSION}. Fix: delete it and install again, or supply the genuine package."
        )


def load_package(tarball: Path) -> Package:
    files: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith("package/database/"):
                continue
            if not member.name.endswith((".sql", ".sh", ".txt")):
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                files[member.name.removeprefix("package/database/")] = handle.read().decode()

    def order(script: str) -> list[str]:
        found = re.findall(r"run_psql_file \$base/(\S+\.sql)", files.get(script, ""))
        if not found:
            raise StoreError(f"cannot read the install order from {script} in {tarball}")
        return found

    return Package(
        version=files.get("VERSION.txt", "?").strip(),
        files=files,
        function_files=order("install-functions.sh"),
        index_files=order("install-indexes.sh"),
        view_files=order("install-views.sh"),
        privilege_files=order("install-privileges.sh"),
    )


@dataclass(frozen=True)
class InstalledState:
    schema: bool
    table: bool
    functions: list[str]
    indexes: list[str]
    views: list[str]

    def missing(self, package: Package) -> list[str]:
        missing = []
        if not self.schema:
            missing.append("schema message_store")
        if not self.table:
            missing.append("table messages")
        missing += [f"function {n}" for n in package.function_names if n not in self.functions]
        missing += [f"index {n}" for n in package.index_names if n not in self.indexes]
        missing += [f"view {n}" for n in package.view_names if n not in self.views]
        return missing

    @property
    def empty(self) -> bool:
        return not (self.schema or self.table or self.functions or self.indexes or self.views)


def inspect(conn: psycopg.Connection) -> InstalledState:
    def names(query: str) -> list[str]:
        return [row[0] for row in conn.execute(query).fetchall()]

    schema = bool(names("SELECT nspname FROM pg_namespace WHERE nspname = 'message_store'"))
    table = bool(
        names(
            "SELECT tablename FROM pg_tables "
            "WHERE schemaname = 'message_store' AND tablename = 'messages'"
        )
    )
    functions = names(
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'message_store'"
    )
    indexes = names("SELECT indexname FROM pg_indexes WHERE schemaname = 'message_store'")
    views = names("SELECT viewname FROM pg_views WHERE schemaname = 'message_store'")
    return InstalledState(schema, table, functions, indexes, views)


def install(
    url: str,
    package: Package,
    *,
    repair: bool = False,
    progress: Progress | None = None,
) -> InstallReport:
    """Install Message DB into the database `url` names; a no-op when it is already there."""
    say = progress or (lambda _msg: None)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreUnavailableError(describe_connection_error(exc, url)) from exc
    with conn:
        database = conn.info.dbname
        report = InstallReport(database, package.version, changed=True)
        try:
            with conn.transaction():
                # Installers racing on one database (cold starts, parallel test runs) take
                # turns; each decides what to do only once it holds the lock.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK_KEY,))
                state = inspect(conn)
                missing = state.missing(package)
                if not missing:
                    agent_schema.apply(conn)  # kept current whenever the installer runs
                    version = conn.execute(
                        "SELECT message_store.message_store_version()"
                    ).fetchone()
                    assert version is not None
                    return InstallReport(database, str(version[0]), changed=False)
                if not state.empty and not repair:
                    shown = ", ".join(missing[:4]) + (
                        f" and {len(missing) - 4} more" if len(missing) > 4 else ""
                    )
                    raise NotInstalledError(
                        f"Message DB is half-installed in database {database} (missing {shown}). "
                        "Fix: run `messagedb-agent db install --repair` (keeps existing messages)."
                    )
                _apply(conn, package, state, report, say)
                say("» agent schema (reply notifications)")
                agent_schema.apply(conn)
        except psycopg.Error as exc:
            raise StoreError(
                f"installing Message DB into {database} failed and was rolled back: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from exc
        version = conn.execute("SELECT message_store.message_store_version()").fetchone()
        assert version is not None
        report.version = str(version[0])
        return report


def _apply(
    conn: psycopg.Connection,
    package: Package,
    state: InstalledState,
    report: InstallReport,
    say: Progress,
) -> None:
    conn.execute(SEARCH_PATH)

    def run(rel: str, label: str) -> None:
        say(f"» {label}")
        conn.execute(package.sql(rel).encode())
        report.applied.append(rel)

    say("» message_store role")
    try:
        with conn.transaction():
            conn.execute(package.sql("roles/message-store.sql").encode())
        report.applied.append("roles/message-store.sql")
    except pg_errors.UniqueViolation:
        # Roles are cluster-wide: an install into another database created it meanwhile (the
        # script only catches the role existing before it started).
        report.skipped.append("roles/message-store.sql: role created concurrently")
    run("schema/message-store.sql", "message_store schema")
    say("» pgcrypto extension")
    try:
        with conn.transaction():
            conn.execute(package.sql("extensions/pgcrypto.sql").encode())
        report.applied.append("extensions/pgcrypto.sql")
    except psycopg.Error as exc:
        # Only gen_random_uuid() is used, and it is built in since PostgreSQL 13.
        reason = str(exc).strip().splitlines()[0]
        report.skipped.append(f"pgcrypto: {reason}")
        say(f"  skipped (gen_random_uuid is built in): {reason}")
    if state.table:
        report.skipped.append("tables/messages.sql: table exists, messages kept")
        say("» messages table (exists, kept)")
    else:
        run("tables/messages.sql", "messages table")
    for rel in package.function_files:
        run(rel, Path(rel).stem.replace("-", "_"))
    for rel in package.index_files:
        run(rel, f"{Path(rel).stem.replace('-', '_')} index")
    for rel in package.view_files:
        run(rel, f"{Path(rel).stem.replace('-', '_')} view")
    for rel in package.privilege_files:
        run(rel, f"{Path(rel).stem} privileges")
