"""A small MCP server that is not ours: plain-text results, and a tool that asks for a user.

Run as a script; the tests start it over stdio.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

TOOLS = [
    types.Tool(
        name="ping",
        description="Answer pong.",
        input_schema={"type": "object", "properties": {"loud": {"type": "boolean"}}},
        annotations=types.ToolAnnotations(idempotent_hint=True),
    ),
    types.Tool(
        name="read_mail",
        description="Read someone's mail.",
        input_schema={
            "type": "object",
            "properties": {"user_id": {"type": "string"}},
            "required": ["user_id"],
        },
    ),
    types.Tool(name="fail", description="Always fails.", input_schema={"type": "object"}),
]


async def list_tools(
    _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(
    _ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    if params.name == "ping":
        text = "PONG" if (params.arguments or {}).get("loud") else "pong"
        return types.CallToolResult(content=[types.TextContent(text=text)])
    return types.CallToolResult(content=[types.TextContent(text="no such luck")], is_error=True)


async def main() -> None:
    server: Server[Any] = Server("foreign", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
