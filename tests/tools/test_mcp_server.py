"""The agent's tools over MCP: the project's server, spoken to by the SDK's own client."""

from __future__ import annotations

import sys

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools import ToolRegistry, default_registry, tool
from messagedb_agent.tools.mcp_server import build_server
from messagedb_agent.tools.tasks import read_task_list, tasks_stream

pytestmark = pytest.mark.timeout(60)


def server_command(owner: str) -> list[str]:
    return [sys.executable, "-m", "messagedb_agent.tools.mcp_server", "--user", owner]


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def test_stdio_server_adds_and_lists_tasks_for_its_user(
    database_url: str, store: MessageStore, owner: str
) -> None:
    command = server_command(owner)
    params = StdioServerParameters(
        command=command[0], args=command[1:], env={"DATABASE_URL": database_url}
    )

    async def session() -> tuple[list[types.Tool], list[types.CallToolResult]]:
        async with Client(params, read_timeout_seconds=30) as client:
            listing = await client.list_tools()
            calls = [
                await client.call_tool("add_task", {"title": "spy", "user_id": "someone-else"}),
                await client.call_tool("add_task", {"title": "water the plants"}),
                await client.call_tool("list_tasks", {"status": "pending"}),
            ]
            return listing.tools, calls

    tools, (sneaky, added, listed) = anyio.run(session)

    by_name = {t.name: t for t in tools}
    assert set(default_registry().names()) == set(by_name)
    assert by_name["add_task"].input_schema["required"] == ["title"]
    assert by_name["add_task"].description == "Add a task to the user's task list."
    expected = {
        "id": 1,
        "title": "water the plants",
        "description": None,
        "completed": False,
        "important": False,
    }
    assert sneaky.is_error
    assert text_of(sneaky).startswith("forbidden:")
    assert not added.is_error
    assert added.structured_content == {"task": expected}
    assert listed.structured_content == {"tasks": [expected]}
    assert '"water the plants"' in text_of(listed)
    assert [t.title for t in read_task_list(store, owner).select()] == ["water the plants"]
    assert store.stream_version(tasks_stream("someone-else")) is None


@tool
def divide(a: float, b: float) -> dict[str, float]:
    """Divide a by b."""
    return {"quotient": a / b}


def test_tool_errors_come_back_as_error_results_the_model_can_read() -> None:
    server = build_server(ToolRegistry([divide]), "ada", None)

    async def session() -> list[types.CallToolResult]:
        async with Client(server) as client:
            return [
                await client.call_tool("divide", {"a": 1, "b": 4}),
                await client.call_tool("divide", {"a": 1, "b": 0}),
                await client.call_tool("divide", {"a": "one"}),
                await client.call_tool("multiply", {}),
                await client.call_tool("divide", {"a": 1, "b": 2, "owner": "eve"}),
            ]

    ok, crash, invalid, unknown, forbidden = anyio.run(session)
    assert (ok.is_error, ok.structured_content) == (False, {"quotient": 0.25})
    assert crash.is_error
    assert "ZeroDivisionError" in text_of(crash)
    assert invalid.is_error
    assert text_of(invalid).startswith("invalid_arguments:")
    assert "'b' is required" in text_of(invalid)
    assert unknown.is_error
    assert text_of(unknown).startswith("unknown_tool:")
    assert forbidden.is_error
    assert text_of(forbidden).startswith("forbidden:")
