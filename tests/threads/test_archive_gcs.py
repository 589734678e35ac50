"""The Cloud Storage archive, through the official client, against a local JSON API fake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.threads.archiving import backdate, rows, settled_thread
from tests.threads.fake_gcs import FakeGcs, serving

from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads import archive
from messagedb_agent.threads.commands import resolve_thread

BUCKET = "agent-archive"


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcs]:
    with serving(BUCKET) as (fake, host):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{host}")
        yield fake


@pytest.fixture
def owner() -> str:
    return f"gcs-{uuid.uuid4().hex[:10]}"


def test_archive_url_chooses_the_store(tmp_path: Path) -> None:
    home = tmp_path
    default = archive.object_store(None, home)
    assert isinstance(default, archive.FolderStore)
    assert default.root == (home / "archive").resolve()
    cloud = archive.object_store("gs://bucket/some/prefix/", home)
    assert isinstance(cloud, archive.GcsStore)
    assert cloud.url("thread_00-x/1.jsonl") == "gs://bucket/some/prefix/thread_00-x/1.jsonl"
    assert isinstance(archive.object_store(f"file://{home}/elsewhere", home), archive.FolderStore)
    with pytest.raises(ValueError, match="names no bucket"):
        archive.object_store("gs:///prefix", home)
    with pytest.raises(ValueError, match="use gs://"):
        archive.object_store("s3://bucket", home)


def test_a_thread_is_archived_to_cloud_storage_and_restored_from_it(
    store: MessageStore, settings: Settings, owner: str, gcs: FakeGcs
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    before = rows(store, stream)
    objects = archive.object_store(f"gs://{BUCKET}/threads", settings.local.home)

    outcome = archive.archive_thread(store, objects, stream, datetime.now(UTC))

    assert outcome.result == "archived", outcome
    assert outcome.url is not None
    assert outcome.url.startswith(f"gs://{BUCKET}/threads/{stream}/")
    ((bucket, name),) = [key for key in gcs.objects if key[1].startswith(f"threads/{stream}/")]
    assert bucket == BUCKET
    assert gcs.objects[(bucket, name)].content_type == archive.CONTENT_TYPE
    uploads = [c for c in gcs.calls if c.startswith("POST /upload/storage/v1/b/")]
    assert len(uploads) == 1
    assert "uploadType=multipart" in uploads[0]
    assert all("ifGenerationMatch=0" in c for c in gcs.calls if c.startswith("POST"))
    assert any(c.startswith("GET /storage/v1/") for c in gcs.calls)  # the size check
    assert any(c.startswith("GET /download/") for c in gcs.calls)  # the read-back
    assert rows(store, stream) == []

    assert resolve_thread(store, thread_id, owner) == (thread_id, stream)
    assert rows(store, stream) == before


def test_an_existing_object_is_never_replaced(settings: Settings, gcs: FakeGcs) -> None:
    objects = archive.GcsStore(BUCKET, "p")
    assert objects.create("a.jsonl", b"first\n") is True
    assert objects.create("a.jsonl", b"second\n") is False
    assert objects.read("a.jsonl") == b"first\n"
    assert objects.size("a.jsonl") == len(b"first\n")
    with pytest.raises(archive.ArchiveError, match="cannot find"):
        objects.size("missing.jsonl")
    with pytest.raises(archive.ArchiveError, match="refused"):
        archive.GcsStore("no-such-bucket").create("a.jsonl", b"x")


def test_a_damaged_cloud_copy_is_not_restored(
    store: MessageStore, settings: Settings, owner: str, gcs: FakeGcs
) -> None:
    thread_id, stream = settled_thread(store, settings, owner)
    backdate(store, stream)
    objects = archive.GcsStore(BUCKET, "threads")
    assert archive.archive_thread(store, objects, stream, datetime.now(UTC)).result == "archived"
    ((bucket, name),) = [key for key in gcs.objects if stream in key[1]]
    gcs.corrupt(bucket, name)

    with pytest.raises(archive.ArchiveCorrupted, match="has changed since it was written"):
        resolve_thread(store, thread_id, owner)

    assert rows(store, stream) == []
