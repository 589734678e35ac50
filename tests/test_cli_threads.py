"""The agent commands, driven through typer's runner against the real Message DB."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from messagedb_agent.cli import app

runner = CliRunner()


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "MODEL_NAME": "offline",
        "LOCAL_USER": f"cli-{uuid.uuid4().hex[:8]}",
    }


def run(env: dict[str, str], *args: str) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def thread_of(output: str) -> str:
    found = re.search(r"thread ([0-9a-f-]{36})", output)
    assert found, output
    return found.group(1)


def test_start_continue_show_replay_fork_and_list(env: dict[str, str]) -> None:
    started = run(env, "start", "add a task to buy milk")
    thread = thread_of(started)
    assert "add_task" in started
    assert "buy milk" in started
    continued = run(env, "continue", thread, "what are my tasks", "--events")
    assert "list_tasks" in continued
    assert "UserMessageAdded" in continued
    shown = run(env, "show", thread)
    assert shown.count("you       ›") == 2
    raw = run(env, "show", thread, "--events")
    assert "#0    SessionStarted" in raw
    replayed = run(env, "replay", thread, "--to", "1")
    assert "next step: llm_call" in replayed
    assert "list_tasks" not in replayed
    forked = run(env, "fork", thread, "--at", "7")
    fork_id = re.search(r"into thread ([0-9a-f-]{36})", forked)
    assert fork_id
    fork_shown = run(env, "show", fork_id.group(1))
    assert "buy milk" in fork_shown
    assert "what are my tasks" not in fork_shown
    listed = run(env, "list")
    assert listed.index(fork_id.group(1)) < listed.index(thread)  # newest activity first


def test_another_users_thread_is_not_found(env: dict[str, str]) -> None:
    thread = thread_of(run(env, "start", "hello"))
    other = {**env, "LOCAL_USER": "someone-else"}
    result = runner.invoke(app, ["show", thread], env=other)
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: I can't find the conversation")
    assert "Traceback" not in result.output


def test_bad_input_is_one_line_errors(env: dict[str, str]) -> None:
    for args in (
        ["show", "not-a-thread"],
        ["start", "   "],
        ["replay", str(uuid.uuid4()), "--to", "3"],
    ):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code != 0, args
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("error:")


def test_every_command_has_help() -> None:
    for command in ("start", "continue", "show", "list", "replay", "fork", "demo", "mcp", "db"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output


def test_a_config_file_supplies_the_settings(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "agent.env"
    user = f"cfg-{uuid.uuid4().hex[:8]}"
    config.write_text(f"DATABASE_URL={database_url}\nMODEL_NAME=offline\nLOCAL_USER={user}\n")
    started = runner.invoke(app, ["--config", str(config), "start", "hello there"], env={})
    assert started.exit_code == 0, started.output
    listed = runner.invoke(app, ["--config", str(config), "list"], env={})
    assert thread_of(started.output) in listed.output
    missing = runner.invoke(app, ["--config", str(tmp_path / "nope.env"), "list"])
    assert missing.exit_code == 2
    assert "no such file" in missing.output


def test_replay_past_the_head_is_an_error_naming_the_head(env: dict[str, str]) -> None:
    thread = thread_of(run(env, "start", "add a task to buy milk"))
    shown = run(env, "show", thread, "--events")
    head = max(int(n) for n in re.findall(r"#(\d+)\s", shown))
    result = runner.invoke(app, ["replay", thread, "--to", "999"], env=env)
    assert result.exit_code == 1
    assert "as of position 999" not in result.output
    assert f"head is position {head}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"as of position {head}" in run(env, "replay", thread, "--to", str(head))


def test_list_has_column_headers(env: dict[str, str]) -> None:
    thread = thread_of(run(env, "start", "hello", "--title", "greeting"))
    header, first, *_ = run(env, "list").splitlines()
    assert header.split() == ["thread", "last", "activity", "(UTC)", "status", "title"]
    assert first.startswith(thread)
    assert first.index("greeting") == header.index("title")
    assert first.index("active") == header.index("status")


def test_a_thread_written_before_sharding_is_continued_and_shown(
    env: dict[str, str], database_url: str
) -> None:
    from tests.threads.legacy import write_legacy_thread

    from messagedb_agent.postgres.connect import open_store
    from messagedb_agent.settings import Settings

    with open_store(Settings(database_url=database_url), database_url) as store:
        thread_id, _ = write_legacy_thread(store, env["LOCAL_USER"], "echo from before")

    continued = run(env, "continue", thread_id, "echo still here", "--events")
    shown = run(env, "show", thread_id)
    listed = run(env, "list")

    assert "still here" in continued
    assert shown.count("you       ›") == 2
    assert thread_id in listed
