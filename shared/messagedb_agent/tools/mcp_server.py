"""The registry's tools offered over MCP, for one configured user.

Every MCP call runs through `execute_tool`, the same validation, timeout and error mapping
the agent's own calls get, with a `ToolContext` whose owner is the user the server was
started for: an MCP client can no more choose the user than the model can.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
import orjson
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from messagedb_agent.events.values import ToolCall
from messagedb_agent.store import stream_name
from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools.context import ToolContext, ToolOutcome
from messagedb_agent.tools.executor import execute_tool
from messagedb_agent.tools.registry import ToolRegistry
from messagedb_agent.tools.tasks import owner_stream_id

SERVER_NAME = "messagedb-agent"
MCP_CATEGORY = "mcp"
CALL_TIMEOUT = 30.0


def build_server(
    registry: ToolRegistry,
    owner: str,
    store: MessageStore | None,
    *,
    timeout: float = CALL_TIMEOUT,
) -> Server[Any]:
    """An MCP server listing the registry's tools and running them as `owner`."""
    origin = stream_name.build(MCP_CATEGORY, owner_stream_id(owner))
    listing = types.ListToolsResult(
        tools=[
            types.Tool(
                name=declared.name,
                description=declared.description,
                input_schema=dict(declared.parameters),
            )
            for declared in registry
        ]
    )

    async def list_tools(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listing

    async def call_tool(
        request: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        call_id = str(uuid.uuid4())
        ctx = ToolContext(
            owner=owner,
            stream_name=origin,
            step_id=call_id,
            tool_call_id=str(request.request_id or call_id),
            store=store,
            now=datetime.now(UTC),
        )
        call = ToolCall(id=ctx.tool_call_id, name=params.name, arguments=params.arguments or {})
        outcome = await anyio.to_thread.run_sync(execute_tool, registry, call, ctx, timeout)
        return call_tool_result(outcome)

    return Server(
        SERVER_NAME,
        version=_version(),
        instructions=f"Tools of the messagedb-agent, acting for user {owner!r}.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def call_tool_result(outcome: ToolOutcome) -> types.CallToolResult:
    """An outcome as MCP reports it: errors in the result (`isError`), so a model reads them."""
    if not outcome.ok:
        text = f"{outcome.error_kind}: {outcome.error_message}"
        return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
    text = orjson.dumps(outcome.result).decode()
    structured = outcome.result if isinstance(outcome.result, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=structured
    )


def serve_stdio(owner: str, store: MessageStore, registry: ToolRegistry | None = None) -> None:
    """Serve the tools over stdin/stdout until the client hangs up (`messagedb-agent mcp`)."""
    from messagedb_agent.tools import default_registry

    server = build_server(registry or default_registry(), owner, store)

    async def serve() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(serve)


def main(argv: list[str] | None = None) -> None:
    """`python -m messagedb_agent.tools.mcp_server --user USER`: the database from settings."""
    import argparse

    from messagedb_agent.postgres.connect import open_store
    from messagedb_agent.settings import Settings

    parser = argparse.ArgumentParser(description="Serve the agent's tools over MCP (stdio).")
    parser.add_argument("--user", required=True, help="the user every tool call acts for")
    args = parser.parse_args(argv)
    with open_store(Settings()) as store:
        serve_stdio(args.user, store)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("messagedb-agent")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


if __name__ == "__main__":
    main()
