"""Installing Message DB: fresh, again, half-installed, and every way the inputs can be wrong."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from messagedb_agent.postgres import installer
from messagedb_agent.postgres.connect import ensure_installed
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import (
    NotInstalledError,
    StoreError,
    StoreUnavailableError,
    TarballIntegrityError,
)

if TYPE_CHECKING:
    from tests.store.conftest import PasswordServer

MESSAGE_DB_FUNCTIONS = {
    "acquire_lock",
    "cardinal_id",
    "category",
    "get_category_messages",
    "get_last_stream_message",
    "get_stream_messages",
    "hash_64",
    "id",
    "is_category",
    "message_store_version",
    "stream_version",
    "write_message",
}


def _functions(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {name for (name,) in conn.execute(_FUNCTIONS_SQL).fetchall()}


_FUNCTIONS_SQL = (
    "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname = 'message_store'"
)


def test_package_lists_every_function_in_install_order(package: installer.Package) -> None:
    assert set(package.function_names) == MESSAGE_DB_FUNCTIONS
    assert package.function_files[0] == "types/message.sql"
    order = package.function_files
    assert order.index("functions/stream-version.sql") < order.index("functions/write-message.sql")
    assert set(package.index_names) == {"messages_category", "messages_id", "messages_stream"}
    assert package.version == "1.3.0"


def test_fresh_database_installs_then_reinstall_changes_nothing(
    fresh_database: Callable[[], str], package: installer.Package
) -> None:
    url = fresh_database()
    said: list[str] = []
    report = installer.install(url, package, progress=said.append)
    assert report.changed
    assert report.version == "1.3.0"
    assert "functions/write-message.sql" in report.applied
    assert "tables/messages.sql" in report.applied
    assert report.summary().startswith(f"Installed Message DB 1.3.0 into {report.database}:")
    assert "» write_message" in said
    assert _functions(url) >= MESSAGE_DB_FUNCTIONS

    again = installer.install(url, package, progress=said.append)
    assert not again.changed
    assert again.applied == []
    assert again.version == "1.3.0"
    assert again.summary() == (
        f"Message DB 1.3.0 is already installed in {report.database}; nothing changed."
    )
    with MessageStore(url) as store:
        stream = f"thread-{uuid.uuid4()}"
        assert store.write_message(None, stream, "Installed", {}) == 0
        assert store.health().message_store_version == "1.3.0"


def test_the_reply_trigger_is_installed_and_restored_on_an_installed_database(
    fresh_database: Callable[[], str], package: installer.Package
) -> None:
    url = fresh_database()
    installer.install(url, package)
    assert _reply_triggers(url) == 1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER agent_announce_thread_event ON message_store.messages")

    again = installer.install(url, package)

    assert not again.changed  # Message DB itself was whole
    assert _reply_triggers(url) == 1


def _reply_triggers(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'agent_announce_thread_event'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_ensure_installed_uses_the_cached_package(
    fresh_database: Callable[[], str], settings: Settings
) -> None:
    url = fresh_database()
    assert ensure_installed(url, settings).changed
    assert not ensure_installed(url, settings).changed


def test_failed_install_is_rolled_back_whole(
    fresh_database: Callable[[], str], package: installer.Package
) -> None:
    url = fresh_database()
    files = dict(package.files)
    files["functions/write-message.sql"] = "CREATE FUNCTION broken( AS nonsense;"
    broken = dataclasses.replace(package, files=files)
    with pytest.raises(StoreError, match="failed and was rolled back") as caught:
        installer.install(url, broken)
    assert "\n" not in str(caught.value)
    with psycopg.connect(url) as conn:
        assert installer.inspect(conn).empty
    assert installer.install(url, package).changed


def _corrupt_copy(settings: Settings, target: Path) -> Path:
    source = installer.fetch_tarball(settings.local.home / "cache")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    with target.open("ab") as handle:
        handle.write(b"\0")
    return target


def test_tampered_tarball_raises_integrity_error_naming_the_fix(
    settings: Settings, tmp_path: Path
) -> None:
    bad = _corrupt_copy(settings, tmp_path / "tampered.tgz")
    with pytest.raises(TarballIntegrityError) as caught:
        installer.fetch_tarball(tmp_path / "cache", bad)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"MESSAGEDB_TARBALL ({bad}) has integrity sha512-")
    assert "Fix:" in message
    assert installer.INTEGRITY[:24] in message


def test_tampered_cached_tarball_is_refused_not_installed(
    settings: Settings, tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    home = tmp_path / "home"
    _corrupt_copy(settings, home / "cache" / installer.TARBALL_NAME)
    url = fresh_database()
    with pytest.raises(TarballIntegrityError, match=r"the cached package .*Fix: delete it"):
        ensure_installed(url, Settings(messagedb_agent_home=home, database_url=url))
    with psycopg.connect(url) as conn:
        assert installer.inspect(conn).empty


def test_missing_messagedb_tarball_is_a_clear_store_error(
    settings: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "message-db.tgz"
    configured = Settings(messagedb_agent_home=settings.local.home, messagedb_tarball=missing)
    with pytest.raises(StoreError) as caught:
        ensure_installed("postgresql://unused@127.0.0.1:1/unused", configured)
    assert str(caught.value) == (
        f"MESSAGEDB_TARBALL={missing} does not exist. Fix: point it at the .tgz file."
    )


def test_half_installed_database_is_refused_then_repaired_keeping_messages(
    fresh_database: Callable[[], str], package: installer.Package
) -> None:
    url = fresh_database()
    installer.install(url, package)
    stream = f"thread-{uuid.uuid4()}"
    with MessageStore(url) as store:
        store.write_message(None, stream, "Kept", {"n": 1})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION message_store.get_last_stream_message(varchar, varchar)")

    with pytest.raises(NotInstalledError) as caught:
        installer.install(url, package)
    message = str(caught.value)
    assert "\n" not in message
    assert "function get_last_stream_message" in message
    assert "--repair" in message
    assert "get_last_stream_message" not in _functions(url)

    repaired = installer.install(url, package, repair=True)
    assert repaired.changed
    assert "tables/messages.sql: table exists, messages kept" in repaired.skipped
    assert _functions(url) >= MESSAGE_DB_FUNCTIONS
    with MessageStore(url) as store:
        last = store.get_last_stream_message(stream)
        assert last is not None
        assert (last.type, last.data) == ("Kept", {"n": 1})
        assert store.write_message(None, stream, "After", {}, expected_version=0) == 1
    assert not installer.install(url, package).changed


def test_half_installed_database_lists_at_most_four_missing_parts(
    fresh_database: Callable[[], str], package: installer.Package
) -> None:
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA message_store")
    with pytest.raises(NotInstalledError, match=r"missing table messages, .* and \d+ more\)"):
        installer.install(url, package)
    assert installer.install(url, package, repair=True).changed


def test_unreachable_database_raises_one_line(package: installer.Package, closed_port: int) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{closed_port}/postgres"
    with pytest.raises(StoreUnavailableError) as caught:
        installer.install(url, package)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:{closed_port}/postgres"
    )
    assert "Fix:" in message
    assert "hunter2" not in message


def test_missing_database_says_so_in_one_line(server_url: str, package: installer.Package) -> None:
    absent = f"absent_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{absent}"))
    with pytest.raises(StoreUnavailableError) as caught:
        installer.install(url, package)
    message = str(caught.value)
    assert "\n" not in message
    assert absent in message
    assert "does not exist" in message
    assert "DATABASE_URL" in message


def test_wrong_password_raises_one_line_naming_database_url(
    password_server: PasswordServer, package: installer.Package
) -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        installer.install(password_server.url("not-the-password"), package)
    message = str(caught.value)
    assert "\n" not in message
    assert "wrong user or password" in message
    assert "DATABASE_URL" in message
    assert "not-the-password" not in message

    without = f"postgresql://postgres@127.0.0.1:{password_server.port}/postgres"
    with pytest.raises(StoreUnavailableError, match=r"wrong user or password.*DATABASE_URL"):
        installer.install(without, package)

    report = installer.install(password_server.url(), package)
    assert report.changed
    assert report.version == "1.3.0"


def _install_all_at_once(urls: list[str], package: installer.Package) -> list[bool]:
    barrier = Barrier(len(urls))

    def install(url: str) -> bool:
        barrier.wait(timeout=10)
        return installer.install(url, package).changed

    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(install, urls))


def test_concurrent_installs_into_one_database_take_turns(
    fresh_database: Callable[[], str], package: installer.Package
) -> None:
    url = fresh_database()
    changed = _install_all_at_once([url] * 4, package)
    assert sorted(changed) == [False, False, False, True]
    assert _functions(url) >= MESSAGE_DB_FUNCTIONS


def test_concurrent_installs_on_a_new_server_share_the_role(
    password_server: PasswordServer, package: installer.Package
) -> None:
    admin = password_server.url()
    with psycopg.connect(admin, autocommit=True) as conn:
        for n in range(3):
            conn.execute(f"CREATE DATABASE concurrent_{n}")
    urls = [password_server.url(database=f"concurrent_{n}") for n in range(3)]
    assert _install_all_at_once(urls, package) == [True, True, True]
    for url in urls:
        assert _functions(url) >= MESSAGE_DB_FUNCTIONS
