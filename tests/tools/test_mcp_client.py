"""Tools of another MCP server (here: this project's own) loaded into a registry."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.tools.contexts import MakeContext

from messagedb_agent.events import ToolCall
from messagedb_agent.settings.agent import McpServerConfig, servers_from_json
from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools import ToolRegistry, execute_tool
from messagedb_agent.tools.mcp_client import load_mcp_tools
from messagedb_agent.tools.tasks import read_task_list

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def remote_user() -> str:
    return f"remote{uuid.uuid4().hex[:10]}"


@pytest.fixture
def registry(database_url: str, remote_user: str) -> Iterator[ToolRegistry]:
    server = McpServerConfig(
        "agent",
        [sys.executable, "-m", "messagedb_agent.tools.mcp_server", "--user", remote_user],
        {"DATABASE_URL": database_url},
    )
    with ToolRegistry() as registry:
        load_mcp_tools([server], registry, connect_timeout=30)
        yield registry


def test_remote_tools_are_registered_under_the_server_prefix(registry: ToolRegistry) -> None:
    assert "agent__add_task" in registry
    assert "agent__calculate" in registry
    spec = {s.name: s for s in registry.specs()}["agent__add_task"]
    assert spec.description == "Add a task to the user's task list."
    assert spec.parameters["required"] == ["title"]
    assert spec.parameters["properties"]["title"]["type"] == "string"


def test_remote_tools_run_through_the_executor(
    registry: ToolRegistry, make_ctx: MakeContext, store: MessageStore, remote_user: str
) -> None:
    add = ToolCall(id="c1", name="agent__add_task", arguments={"title": "from afar"})
    outcome = execute_tool(registry, add, make_ctx(), timeout=20)
    assert outcome.ok, outcome.error_message
    assert outcome.result == {
        "task": {
            "id": 1,
            "title": "from afar",
            "description": None,
            "completed": False,
            "important": False,
        }
    }
    assert [t.title for t in read_task_list(store, remote_user).select()] == ["from afar"]


def test_remote_errors_are_tool_errors(registry: ToolRegistry, make_ctx: MakeContext) -> None:
    divide = ToolCall(id="c1", name="agent__calculate", arguments={"expression": "1/0"})
    outcome = execute_tool(registry, divide, make_ctx(), timeout=20)
    assert (outcome.ok, outcome.error_kind, outcome.retryable) == (False, "exception", False)
    assert "Division by zero" in (outcome.error_message or "")
    missing = ToolCall(id="c2", name="agent__calculate", arguments={})
    checked = execute_tool(registry, missing, make_ctx(), timeout=20)
    assert checked.error_kind == "invalid_arguments"
    assert "'expression' is required" in (checked.error_message or "")


def test_closing_the_registry_ends_the_session(
    database_url: str, remote_user: str, make_ctx: MakeContext
) -> None:
    server = McpServerConfig(
        "agent",
        [sys.executable, "-m", "messagedb_agent.tools.mcp_server", "--user", remote_user],
        {"DATABASE_URL": database_url},
    )
    before = {t.name for t in threading.enumerate()}
    registry = ToolRegistry()
    load_mcp_tools([server], registry, connect_timeout=30)
    registry.close()
    assert "mcp" not in {t.name for t in threading.enumerate()} - before
    echo = ToolCall(id="c", name="agent__echo", arguments={"message": "x"})
    outcome = execute_tool(registry, echo, make_ctx())
    assert not outcome.ok
    assert "not connected" in (outcome.error_message or "")


def test_foreign_tools_asking_for_a_user_are_left_out(
    make_ctx: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    script = Path(__file__).with_name("foreign_mcp_server.py")
    with ToolRegistry() as registry:
        load_mcp_tools([McpServerConfig("mail", [sys.executable, str(script)])], registry)
        assert registry.names() == ["mail__ping", "mail__fail"]
        assert "skipping MCP tool read_mail of mail" in caplog.text
        ping = ToolCall(id="c1", name="mail__ping", arguments={"loud": True})
        assert execute_tool(registry, ping, make_ctx(), timeout=20).result == "PONG"
        fail = execute_tool(registry, ToolCall(id="c2", name="mail__fail"), make_ctx())
        assert (fail.ok, fail.error_kind, fail.error_message) == (
            False,
            "exception",
            "no such luck",
        )


def test_a_tool_the_server_hints_idempotent_may_run_again_and_no_other() -> None:
    script = Path(__file__).with_name("foreign_mcp_server.py")
    with ToolRegistry() as registry:
        load_mcp_tools([McpServerConfig("mail", [sys.executable, str(script)])], registry)
        ping, fail = registry.get("mail__ping"), registry.get("mail__fail")
        assert ping is not None
        assert fail is not None
        assert (ping.idempotent, fail.idempotent) == (True, False)


def test_a_server_that_does_not_start_is_reported() -> None:
    broken = McpServerConfig("nothing", [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(ConnectionError, match="'nothing'"):
        load_mcp_tools([broken], ToolRegistry(), connect_timeout=15)


def test_server_configs_parse_from_json_and_are_validated() -> None:
    [config] = servers_from_json('[{"name": "files", "command": ["npx", "files-server"]}]')
    assert config == McpServerConfig("files", ["npx", "files-server"], None)
    with pytest.raises(ValidationError):
        McpServerConfig("bad name!", ["x"])
    with pytest.raises(ValidationError):
        McpServerConfig("empty", [])
