"""Tools from `TOOL_MODULES` and from `build_engine(tools=...)` join the engine's registry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tests.tools import priority_tools
from typer.testing import CliRunner

from messagedb_agent.cli import app
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread
from messagedb_agent.threads.reading import read_thread
from messagedb_agent.tools import tool
from messagedb_agent.tools.modules import ToolModuleError, load_tool_modules, module_names

MODULE = "tests.tools.priority_tools"


def _names(engine: Any) -> list[str]:
    return [spec.name for spec in engine.tools.specs()]


def _last_answer(store: MessageStore, stream: str) -> str:
    last = read_thread(store, stream)[-1].event
    text: str = last.response_text  # type: ignore[attr-defined]
    return text


def test_a_module_gives_the_tools_it_defines_not_those_it_imports() -> None:
    assert [t.name for t in load_tool_modules([MODULE])] == ["set_priority"]


def test_the_setting_is_split_on_commas_without_blanks_or_repeats() -> None:
    assert module_names(" a.b, ,c ,a.b,") == ["a.b", "c"]
    assert module_names(None) == []


def test_a_module_that_cannot_be_imported_is_a_clear_error() -> None:
    with pytest.raises(ToolModuleError, match=r"'no_such\.module', which cannot be imported"):
        load_tool_modules(["no_such.module"])


def test_a_module_without_tools_is_a_clear_error() -> None:
    with pytest.raises(ToolModuleError, match="defines no @tool functions"):
        load_tool_modules(["tests.tools.toolless_module"])


def test_a_module_that_fails_while_importing_is_named_with_its_error() -> None:
    with pytest.raises(ToolModuleError, match="failed while importing: RuntimeError: the billing"):
        load_tool_modules(["tests.tools.broken_tool_module"])


def test_build_engine_fails_at_start_up_on_a_bad_module(
    store: MessageStore, database_url: str
) -> None:
    module = "tests.tools.toolless_module"
    settings = Settings(database_url=database_url, model_name="offline", tool_modules=module)
    with pytest.raises(ToolModuleError, match=r"toolless_module'.* defines no @tool functions"):
        build_engine(settings, store)


@pytest.mark.parametrize("name", ["nope_x", "tests.tools.nope", "no_such_package.tools", "a..b"])
def test_settings_refuse_a_module_that_is_not_on_the_path(name: str) -> None:
    with pytest.raises(
        ValidationError, match=re.escape(f"TOOL_MODULES names {name!r}, which cannot be")
    ):
        Settings(tool_modules=f"{MODULE}, {name}")


def test_a_module_in_the_current_folder_but_off_the_path_is_told_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_local_tools.py").write_text("")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ValidationError, match=r"it is in .*: run with PYTHONPATH=\. set"):
        Settings(tool_modules="my_local_tools")


def test_tool_modules_join_the_engine_and_the_offline_model_calls_them(
    store: MessageStore, database_url: str
) -> None:
    settings = Settings(database_url=database_url, model_name="offline", tool_modules=MODULE)
    engine = build_engine(settings, store, OfflineModel())
    assert {"set_priority", "add_task", "echo"} <= set(_names(engine))

    thread = start_thread(
        store, owner="ada", message="/call set_priority task_id=1 level=high", now=engine.clock()
    )
    run_until_idle(engine, thread.notification, chain=20)

    answer = _last_answer(store, thread.stream_name)
    assert 'set_priority returned {"level": "high", "owner": "ada", "task_id": 1}' in answer


def test_a_library_user_passes_tools_to_build_engine(
    store: MessageStore, database_url: str
) -> None:
    @tool
    def shout(text: str) -> str:
        """Say it loudly.

        Args:
            text: What to say.
        """
        return text.upper()

    settings = Settings(database_url=database_url, model_name="offline")
    engine = build_engine(settings, store, OfflineModel(), tools=[shout])
    assert "shout" in _names(engine)
    thread = start_thread(
        store, owner="ada", message='/call shout text="hi there"', now=engine.clock()
    )
    run_until_idle(engine, thread.notification, chain=20)
    assert 'shout returned "HI THERE"' in _last_answer(store, thread.stream_name)


def test_a_name_taken_twice_is_refused(store: MessageStore, database_url: str) -> None:
    settings = Settings(database_url=database_url, model_name="offline", tool_modules=MODULE)
    with pytest.raises(ValueError, match="'set_priority' is already registered"):
        build_engine(settings, store, OfflineModel(), tools=[priority_tools.set_priority])


def test_the_cli_offers_the_tools_of_tool_modules(database_url: str) -> None:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_NAME": "offline",
        "GOOGLE_CLOUD_PROJECT": "",
        "LOCAL_USER": "cli-tools",
        "TOOL_MODULES": MODULE,
    }
    result = CliRunner().invoke(app, ["start", "/call set_priority task_id=2"], env=env)

    assert result.exit_code == 0, result.output
    assert '"level": "low", "owner": "cli-tools", "task_id": 2' in result.output


def test_the_cli_names_a_tool_module_it_cannot_import_in_one_line(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "MODEL_NAME": "offline", "TOOL_MODULES": "nope_y"}
    result = CliRunner().invoke(app, ["start", "hello"], env=env)

    assert result.exit_code != 0
    assert "TOOL_MODULES names 'nope_y', which cannot be imported" in result.output
    assert "Traceback" not in result.output


def test_the_stack_names_a_broken_tool_module_in_one_line_before_starting_anything(
    database_url: str,
) -> None:
    env = {"DATABASE_URL": database_url, "TOOL_MODULES": "tests.tools.broken_tool_module"}
    result = CliRunner().invoke(app, ["stack", "--transport", "local"], env=env)

    assert result.exit_code != 0
    assert "failed while importing: RuntimeError: the billing API key is missing" in result.output
    assert "Traceback" not in result.output
    assert "starting" not in result.output
