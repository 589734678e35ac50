"""Health probes and connection failures: reported in one line, never as a raw driver error."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.diagnosis import describe_connection_error, redact
from messagedb_agent.store.errors import StoreUnavailableError
from messagedb_agent.store.message import NewMessage

if TYPE_CHECKING:
    from tests.store.conftest import PasswordServer


def test_health_reports_message_db_and_postgres_versions(store: MessageStore) -> None:
    health = store.health()
    assert health.ok
    assert health.message_store_version == "1.3.0"
    assert health.server_version is not None
    assert health.server_version.split(".")[0].isdigit()
    assert health.detail == "ok"
    assert store.message_store_version() == "1.3.0"


def _dead_url(port: int) -> str:
    return f"postgresql://postgres:secret@127.0.0.1:{port}/postgres"


def test_opening_a_store_on_a_closed_port_raises_one_line(closed_port: int) -> None:
    store = MessageStore(_dead_url(closed_port), timeout=1)
    with pytest.raises(StoreUnavailableError) as caught:
        store.open()
    message = str(caught.value)
    assert "\n" not in message
    assert "cannot reach PostgreSQL at" in message
    assert f"127.0.0.1:{closed_port}" in message
    assert "secret" not in message
    health = store.health()
    assert not health.ok
    assert health.message_store_version is None
    store.close()


def test_health_on_a_dead_port_says_why_without_raising(closed_port: int) -> None:
    store = MessageStore(_dead_url(closed_port), timeout=1)
    store.pool.open(wait=False)
    try:
        health = store.health()
        assert not health.ok
        assert (health.message_store_version, health.server_version) == (None, None)
        assert "cannot reach PostgreSQL" in health.detail
        assert "\n" not in health.detail
    finally:
        store.close()


def test_every_call_on_a_dead_port_raises_store_unavailable(closed_port: int) -> None:
    store = MessageStore(_dead_url(closed_port), timeout=0.2)
    store.pool.open(wait=False)
    stream = f"thread-{uuid.uuid4()}"
    calls = [
        lambda: store.write_message(None, stream, "T", {}),
        lambda: store.write_messages(stream, [NewMessage("T", {})]),
        lambda: store.read_stream(stream),
        lambda: store.get_stream_messages(stream),
        lambda: store.get_last_stream_message(stream),
        lambda: store.stream_version(stream),
        lambda: store.get_category_messages("thread"),
        lambda: store.message_store_version(),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailableError, match="cannot reach PostgreSQL"):
                call()
    finally:
        store.close()


def test_store_whose_server_went_away_reports_unavailable(
    password_server: PasswordServer,
) -> None:
    with MessageStore(password_server.url(), min_size=1, max_size=1, timeout=1) as store:
        assert store.health().ok is False  # Message DB is not installed there
        password_server.stop()
        health = store.health()
        assert not health.ok
        with pytest.raises(StoreUnavailableError) as caught:
            store.stream_version(f"thread-{uuid.uuid4()}")
        assert "\n" not in str(caught.value)


def test_wrong_password_names_database_url_and_hides_the_password(
    password_server: PasswordServer,
) -> None:
    store = MessageStore(password_server.url("wrong-pw"), timeout=1)
    with pytest.raises(StoreUnavailableError) as caught:
        store.open()
    message = str(caught.value)
    assert "wrong user or password" in message
    assert "DATABASE_URL" in message
    assert "wrong-pw" not in message
    assert "\n" not in message
    store.close()


@pytest.mark.parametrize(
    ("conninfo", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("postgresql://app:p@ss@w0rd@db/x", "postgresql://app:***@db/x"),
        (
            "postgresql://app@db/x?password=s3cret&sslmode=require",
            "postgresql://app@db/x?password=***&sslmode=require",
        ),
        ("host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x"),
        ("host=db password = 's3 cret' dbname=x", "host=db password = *** dbname=x"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("postgresql://postgres:@/x?host=/run/pg", "postgresql://postgres:***@/x?host=/run/pg"),
    ],
)
def test_redact_hides_every_form_of_password(conninfo: str, shown: str) -> None:
    assert redact(conninfo) == shown


def test_connection_error_description_never_shows_the_password() -> None:
    url = "postgresql://app:s3cret@127.0.0.1:1/x"
    failure = OSError('connection to server at "127.0.0.1", port 1 failed: Connection refused')
    described = describe_connection_error(failure, url)
    assert "s3cret" not in described
    assert described.startswith("cannot reach PostgreSQL at postgresql://app:***@127.0.0.1:1/x")
