"""`messagedb-agent archive`, then `list` and `show` on the archived thread, on the real Message DB."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests.test_cli_threads import run, thread_of
from tests.threads.archiving import backdate, rows

from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "MODEL_NAME": "offline",
        "LOCAL_USER": f"cli-archive-{uuid.uuid4().hex[:8]}",
        "ARCHIVE_URL": str(tmp_path / "archive"),
    }


def test_archive_dry_run_then_archive_then_list_and_show_restore(
    env: dict[str, str], store: MessageStore, tmp_path: Path
) -> None:
    thread = thread_of(run(env, "start", "add a task to buy milk"))
    stream = thread_stream(thread)
    backdate(store, stream, days=90)
    before = rows(store, stream)

    dry = run(env, "archive", "--idle-days", "60", "--dry-run")
    assert f"would archive {stream}" in dry
    assert "would archive" in dry.splitlines()[-1]
    assert rows(store, stream) == before
    assert not (tmp_path / "archive").exists()

    done = run(env, "archive", "--idle-days", "60")
    assert f"archived      {stream}  {len(before)} events → file://" in done
    assert done.splitlines()[-1].startswith("archived ")
    assert rows(store, stream) == []
    assert len(list((tmp_path / "archive").rglob("*.jsonl"))) >= 1

    listed = run(env, "list")
    assert thread in listed
    assert "archived" in listed

    shown = run(env, "show", thread)
    assert "buy milk" in shown
    assert rows(store, stream) == before
    again = run(env, "archive", "--idle-days", "60", "--dry-run")
    assert f"would archive {stream}" in again  # restored, and still idle


def test_archive_needs_idle_days(env: dict[str, str]) -> None:
    from typer.testing import CliRunner

    from messagedb_agent.cli import app

    result = CliRunner().invoke(app, ["archive"], env=env)
    assert result.exit_code == 2
    assert "--idle-days" in result.output
