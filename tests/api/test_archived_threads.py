"""Archived threads through the HTTP API: listed as archived, restored when read or written."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer, start
from tests.threads.archiving import backdate, rows

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.notification import Notification
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream
from messagedb_agent.threads import archive


class Stepping:
    """Pub/Sub and the step function in one: each notification is stepped until idle."""

    def __init__(self, store: MessageStore, settings: Settings) -> None:
        self.engine = build_engine(settings, store, OfflineModel())

    def publish(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            run_until_idle(self.engine, notification, max_wait=10)


@pytest.fixture
def client(make_api: MakeApi, store: MessageStore, settings: Settings) -> Iterator[FlaskClient]:
    with make_api(Stepping(store, settings)).flask_app().test_client() as test_client:
        yield test_client


def archived(store: MessageStore, folder: Path, thread_id: str) -> str:
    stream = thread_stream(thread_id)
    backdate(store, stream)
    outcome = archive.archive_thread(store, archive.FolderStore(folder), stream, datetime.now(UTC))
    assert outcome.result == "archived", outcome
    assert rows(store, stream) == []
    return stream


def test_an_archived_thread_is_listed_then_restored_by_reading_it(
    client: FlaskClient,
    store: MessageStore,
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    thread_id = start(client, auth, "add a task to buy milk")
    before = client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()
    archived(store, tmp_path, thread_id)

    listed = client.get("/v1/threads", headers=auth).get_json()["threads"]
    assert [(t["thread_id"], t["status"]) for t in listed] == [(thread_id, "archived")]

    detail = client.get(f"/v1/threads/{thread_id}", headers=auth)
    assert detail.status_code == 200
    untimed = [{k: v for k, v in m.items() if k != "time"} for m in before["messages"]]
    assert [{k: v for k, v in m.items() if k != "time"} for m in detail.get_json()["messages"]] == (
        untimed  # times are the events' own, 40 days back: backdated to make the thread idle
    )
    listed = client.get("/v1/threads", headers=auth).get_json()["threads"]
    assert [t["status"] for t in listed] == ["active"]


def test_a_message_to_an_archived_thread_restores_it_and_is_answered(
    client: FlaskClient,
    store: MessageStore,
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    thread_id = start(client, auth, "add a task to buy milk")
    stream = archived(store, tmp_path, thread_id)

    sent = client.post(
        f"/v1/threads/{thread_id}/messages",
        json={"message": "what are my tasks"},
        headers={**auth, "Idempotency-Key": "after-archive"},
    )

    assert sent.status_code in (200, 202), sent.get_json()
    messages = client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()["messages"]
    assert [m["role"] for m in messages][-2:] == ["user", "assistant"]
    assert "buy milk" in messages[-1]["text"]
    assert rows(store, stream)[0][2] == "SessionStarted"


def test_another_user_gets_404_and_restores_nothing(
    client: FlaskClient,
    store: MessageStore,
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    thread_id = start(client, auth, "add a task to buy milk")
    stream = archived(store, tmp_path, thread_id)

    answer = client.get(f"/v1/threads/{thread_id}", headers=bearer("intruder-x"))

    assert answer.status_code == 404
    assert rows(store, stream) == []


def test_a_damaged_archive_is_a_clear_error_and_changes_nothing(
    client: FlaskClient,
    store: MessageStore,
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    thread_id = start(client, auth, "add a task to buy milk")
    stream = archived(store, tmp_path, thread_id)
    (export,) = tmp_path.rglob("*.jsonl")
    export.write_bytes(export.read_bytes().replace(b"milk", b"silk"))

    answer = client.get(f"/v1/threads/{thread_id}", headers=auth)

    assert answer.status_code == 500
    assert answer.get_json()["error"]["code"] == "archive_corrupted"
    assert str(tmp_path) not in answer.get_data(as_text=True)
    assert rows(store, stream) == []
    export.unlink()
    gone = client.post(
        f"/v1/threads/{thread_id}/messages", json={"message": "hello?"}, headers=auth
    )
    assert gone.status_code == 503
    assert gone.get_json()["error"]["code"] == "archive_unavailable"
    assert rows(store, stream) == []
