"""Archiving idle threads to a folder and restoring them, against the real Message DB."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from tests.relay.test_sweep import catch_up, positions, watched
from tests.threads.archiving import backdate, rows, settle, settled_thread
from tests.threads.legacy import write_legacy_thread

from messagedb_agent.events import Metadata, SnapshotRecorded, to_message
from messagedb_agent.events.index import ThreadArchived
from messagedb_agent.projections.next_step import StepKind, project_next_step
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads import archive
from messagedb_agent.threads.commands import (
    add_message,
    request_termination,
    resolve_thread,
    start_thread,
)
from messagedb_agent.threads.errors import ThreadNotFound
from messagedb_agent.threads.index import index_stream, list_threads
from messagedb_agent.threads.reading import read_thread


@pytest.fixture
def owner() -> str:
    return f"archivist-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def folder(tmp_path: Path) -> archive.FolderStore:
    return archive.FolderStore(tmp_path / "archive")


def now() -> datetime:
    return datetime.now(UTC)


def markers(store: MessageStore, owner: str) -> list[ThreadArchived]:
    return [
        ThreadArchived.model_validate(m.data)
        for m in store.read_stream(index_stream(owner))
        if m.type == ThreadArchived.type
    ]


def test_an_idle_thread_is_exported_verified_and_deleted(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    snapshot = archive.snapshot_stream(stream)
    snap = SnapshotRecorded(
        entity_version=0, head_id=str(uuid.uuid4()), fingerprint="x", entity_data={}
    )
    recorded = to_message(snap, Metadata())
    store.write_message(None, snapshot, recorded.type, recorded.data, recorded.metadata)
    backdate(store, stream)
    before = rows(store, stream)
    with store.connection() as conn:
        global_positions = [
            r[0]
            for r in conn.execute(
                "SELECT global_position FROM message_store.messages WHERE stream_name = %s"
                " ORDER BY position",
                (stream,),
            ).fetchall()
        ]

    outcome = archive.archive_thread(store, folder, stream, now())

    assert outcome.result == "archived", outcome
    assert outcome.events == len(before)
    assert rows(store, stream) == []
    assert rows(store, snapshot) == []
    assert outcome.url is not None
    assert outcome.url.startswith("file://")
    exported = [orjson.loads(line) for line in Path(outcome.url[7:]).read_bytes().splitlines()]
    assert [e["id"] for e in exported] == [r[0] for r in before]
    assert [e["position"] for e in exported] == list(range(len(before)))
    assert [e["global_position"] for e in exported] == global_positions
    assert [e["type"] for e in exported] == [r[2] for r in before]
    assert set(exported[0]) == {
        "id",
        "type",
        "position",
        "global_position",
        "time",
        "data",
        "metadata",
    }
    assert exported[0]["data"]["owner"] == owner
    assert exported[0]["metadata"]["correlationStreamName"] == stream
    (marker,) = markers(store, owner)
    assert (marker.thread_id, marker.stream_name, marker.events) == (thread_id, stream, len(before))
    assert marker.last_position == before[-1][1]


def test_the_listing_marks_an_archived_thread_without_reading_the_archive(
    store: MessageStore, settings: Settings, owner: str, tmp_path: Path
) -> None:
    kept_id, _ = settled_thread(store, settings, owner, "list my tasks")
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    folder = archive.FolderStore(tmp_path / "a")
    assert archive.archive_thread(store, folder, stream, now()).result == "archived"
    (tmp_path / "a").rename(tmp_path / "gone")  # the listing must not need it

    page = list_threads(store, owner)

    by_id = {item.thread_id: item for item in page.items}
    assert by_id[kept_id].status == "active"
    assert by_id[thread_id].status == "archived"
    assert by_id[thread_id].title == "add a task to buy milk"
    assert page.items[-1].thread_id == thread_id  # its last activity is 40 days old


def test_a_dry_run_changes_nothing(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    _, stream = settled_thread(store, settings, owner)
    backdate(store, stream, days=400)
    before = rows(store, stream)

    summary = archive.archive_idle(store, folder, now(), 300, dry_run=True)

    mine = [o for o in summary.outcomes if o.stream == stream]
    assert [o.result for o in mine] == ["would_archive"]
    assert rows(store, stream) == before
    assert not folder.root.exists()
    assert markers(store, owner) == []
    limited = archive.archive_idle(store, folder, now(), 300, dry_run=True, limit=1)
    assert limited.count("would_archive") == 1


def test_a_thread_with_pending_work_or_a_live_claim_is_skipped(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    pending = start_thread(store, owner=owner, message="add a task", now=now())  # unanswered
    backdate(store, pending.stream_name)

    outcome = archive.archive_thread(store, folder, pending.stream_name, now())

    assert outcome.result == "skipped"
    assert "needs a step (llm_call)" in outcome.reason
    assert len(rows(store, pending.stream_name)) == 2
    summary = archive.archive_idle(store, folder, now(), 30)
    assert [o.result for o in summary.outcomes if o.stream == pending.stream_name] == ["skipped"]
    assert markers(store, owner) == []


def test_a_corrupted_export_is_refused_and_nothing_is_deleted(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    class Damaging(archive.FolderStore):
        """Writes one byte wrong, as a faulty disk or a truncated upload would."""

        def create(self, name: str, body: bytes) -> bool:
            return super().create(name, body[:-2] + b"x\n")

    _, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    before = rows(store, stream)

    with pytest.raises(archive.ArchiveCorrupted, match="does not read back as written"):
        archive.archive_thread(store, Damaging(folder.root), stream, now())

    assert rows(store, stream) == before
    assert markers(store, owner) == []
    summary = archive.archive_idle(store, Damaging(folder.root / "other"), now(), 30)
    (failed,) = [o for o in summary.outcomes if o.stream == stream]
    assert failed.result == "failed"
    assert "nothing was deleted" in failed.reason
    assert rows(store, stream) == before


def test_a_thread_that_moves_on_while_archiving_is_kept(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)

    class Interrupted(archive.FolderStore):
        def create(self, name: str, body: bytes) -> bool:
            add_message(store, thread_id, owner=owner, message="one more thing", now=now())
            return super().create(name, body)

    outcome = archive.archive_thread(store, Interrupted(folder.root), stream, now())

    assert (outcome.result, outcome.reason) == ("skipped", "moved on while archiving")
    assert rows(store, stream)[-1][2] == "UserMessageAdded"
    assert resolve_thread(store, thread_id, owner) == (thread_id, stream)


def test_reading_restores_ids_positions_and_times_and_it_can_be_archived_again(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    before = rows(store, stream)
    outcome = archive.archive_thread(store, folder, stream, now())
    assert outcome.result == "archived"

    assert resolve_thread(store, thread_id, owner) == (thread_id, stream)

    assert rows(store, stream) == before
    events = read_thread(store, stream)
    assert project_next_step(events, now()).kind == StepKind.WAIT_FOR_USER
    assert list_threads(store, owner).items[0].status == "active"
    # Archived again: the events are the same but their global positions are new, so this is
    # a second export, and the newest record is the one restored from.
    again = archive.archive_thread(store, folder, stream, now())
    assert again.result == "archived"
    assert again.url != outcome.url
    assert [m.url for m in markers(store, owner)] == [outcome.url, again.url]
    assert resolve_thread(store, stream, owner) == (thread_id, stream)
    assert rows(store, stream) == before


def test_another_user_cannot_restore_or_see_an_archived_thread(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    archive.archive_thread(store, folder, stream, now())

    with pytest.raises(ThreadNotFound):
        resolve_thread(store, thread_id, "someone-else")

    assert rows(store, stream) == []


def test_concurrent_restores_write_once(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    before = rows(store, stream)
    archive.archive_thread(store, folder, stream, now())
    (marker,) = markers(store, owner)
    start = threading.Barrier(6)
    results: list[bool | str] = []

    def restore() -> None:
        start.wait()
        try:
            results.append(archive.restore(store, marker))
        except Exception as exc:  # reported by the assertions below
            results.append(repr(exc))

    def read() -> None:
        start.wait()
        results.append(resolve_thread(store, thread_id, owner) == (thread_id, stream))

    workers = [threading.Thread(target=restore) for _ in range(3)]
    workers += [threading.Thread(target=read) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert rows(store, stream) == before  # each event once
    assert all(r in (True, False) for r in results), results
    assert results.count(True) == 4, results  # the three reads, and exactly one restore


def test_a_tampered_export_is_not_restored(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    outcome = archive.archive_thread(store, folder, stream, now())
    assert outcome.url is not None
    path = Path(outcome.url[7:])
    path.write_bytes(path.read_bytes().replace(b"buy milk", b"buy beer"))

    with pytest.raises(archive.ArchiveCorrupted, match="has changed since it was written"):
        resolve_thread(store, thread_id, owner)

    assert rows(store, stream) == []
    path.unlink()
    with pytest.raises(archive.ArchiveError, match="cannot be read"):
        resolve_thread(store, thread_id, owner)


def test_a_legacy_thread_is_archived_and_restored(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = write_legacy_thread(store, owner, "add a task to call mum")
    settle(store, settings, stream, 1)
    backdate(store, stream)
    before = rows(store, stream)

    outcome = archive.archive_thread(store, folder, stream, now())

    assert outcome.result == "archived", outcome
    assert rows(store, stream) == []
    assert [i.status for i in list_threads(store, owner).items] == ["archived"]
    assert resolve_thread(store, thread_id, owner) == (thread_id, stream)
    assert rows(store, stream) == before


def test_a_message_to_an_archived_thread_restores_it_then_is_answered(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    before = rows(store, stream)
    archive.archive_thread(store, folder, stream, now())

    appended = add_message(
        store, thread_id, owner=owner, message="what are my tasks", now=now(), idempotency_key="k1"
    )
    retried = add_message(
        store, thread_id, owner=owner, message="what are my tasks", now=now(), idempotency_key="k1"
    )

    assert appended.position == len(before)
    assert (retried.position, retried.created) == (appended.position, False)
    assert rows(store, stream)[: len(before)] == before
    settle(store, settings, stream, appended.position)
    events = read_thread(store, stream)
    assert project_next_step(events, now()).kind == StepKind.WAIT_FOR_USER
    assert events[-1].position > appended.position
    assert "buy milk" in orjson.dumps(events[-1].event.model_dump(mode="json")).decode()


def test_a_write_racing_the_delete_restores_instead_of_landing_at_position_zero(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    """add_message (then request_termination) read the head, then the thread was archived
    before its write: the write expects that head, is refused, and the next attempt restores
    the thread first."""
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    before = rows(store, stream)

    class ArchivingAfterRead:
        def __init__(self, inner: MessageStore) -> None:
            self.inner = inner
            self.armed = True

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def get_last_stream_message(self, stream_name: str, type: str | None = None) -> object:
            last = self.inner.get_last_stream_message(stream_name, type)
            if self.armed:
                self.armed = False
                assert archive.archive_thread(self.inner, folder, stream, now()).result == (
                    "archived"
                )
            return last

    racing = ArchivingAfterRead(store)
    appended = add_message(racing, thread_id, owner=owner, message="still there?", now=now())  # type: ignore[arg-type]

    assert appended.position == len(before)
    assert rows(store, stream)[: len(before)] == before
    assert rows(store, stream)[-1][2] == "UserMessageAdded"

    settle(store, settings, stream, appended.position)
    backdate(store, stream)
    before = rows(store, stream)
    racing = ArchivingAfterRead(store)
    ending = request_termination(racing, thread_id, owner=owner)  # type: ignore[arg-type]

    assert ending.position == len(before)
    assert rows(store, stream)[: len(before)] == before
    assert rows(store, stream)[-1][2] == "SessionTerminationRequested"


def test_the_relay_reads_a_restored_thread_as_new_events_and_lets_it_rest(
    store: MessageStore, settings: Settings, owner: str, folder: archive.FolderStore
) -> None:
    """Restored rows have new global positions past the relay's cursor: the relay announces
    the head once (the step finds nothing to do), then leaves a thread that waits for its user."""
    thread_id, stream = write_legacy_thread(store, owner, "add a task to call mum")
    settle(store, settings, stream, 1)
    backdate(store, stream)
    catch_up(store, now())
    assert archive.archive_thread(store, folder, stream, now()).result == "archived"
    assert positions(catch_up(store, now()), stream) == []

    resolve_thread(store, thread_id, owner)

    head = rows(store, stream)[-1][1]
    assert positions(catch_up(store, now()), stream) == [head]
    assert positions(catch_up(store, now()), stream) == []  # looked at once more, at most
    assert stream not in watched(store)
