"""Tools of other MCP servers, offered to the model next to our own.

Each configured server is started as a subprocess and spoken to over stdio with the SDK's
`Client`. The engine is synchronous, so the sessions live on a private event loop in a
background thread for as long as the registry does; a tool call hops onto that loop and
waits for its answer. Remote tools are named `<server>__<tool>` and keep the server's own
input schema; an error the server reports is a tool error the model reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters

from messagedb_agent.settings.agent import McpServerConfig
from messagedb_agent.tools.context import ToolContext
from messagedb_agent.tools.errors import ToolError, TransientToolError
from messagedb_agent.tools.registry import Tool, ToolRegistry

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0
CALL_TIMEOUT = 60.0
_NAME_LIMIT = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class McpConnections:
    """Open sessions to MCP servers, and the tools they offer."""

    def __init__(
        self,
        servers: Sequence[McpServerConfig],
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        names = [server.name for server in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"MCP server names must be unique: {names}")
        self._servers = list(servers)
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp", daemon=True)
        self._stop = asyncio.Event()
        self._holders: list[concurrent.futures.Future[None]] = []
        self._clients: dict[str, Client] = {}
        self._listings: dict[str, list[types.Tool]] = {}

    def open(self) -> Self:
        self._thread.start()
        try:
            for server in self._servers:
                ready: concurrent.futures.Future[tuple[Client, list[types.Tool]]] = (
                    concurrent.futures.Future()
                )
                self._holders.append(
                    asyncio.run_coroutine_threadsafe(self._hold(server, ready), self._loop)
                )
                try:
                    client, listing = ready.result(timeout=self._connect_timeout)
                except Exception as exc:
                    raise ConnectionError(
                        f"MCP server {server.name!r} ({' '.join(server.command)}) did not start:"
                        f" {type(exc).__name__}: {exc}"
                    ) from exc
                self._clients[server.name] = client
                self._listings[server.name] = listing
        except BaseException:
            self.close()
            raise
        return self

    def tools(self) -> list[Tool]:
        """Every remote tool as a `Tool`; ones whose schema names a user are left out."""
        found: list[Tool] = []
        for server, listing in self._listings.items():
            for remote in listing:
                try:
                    found.append(self._tool(server, remote))
                except ValueError as exc:
                    log.warning("skipping MCP tool %s of %s: %s", remote.name, server, exc)
        return found

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Call one remote tool and wait for its result (from any thread but the loop's)."""
        client = self._clients.get(server)
        if client is None:
            raise ToolError(f"MCP server {server!r} is not connected.")
        future = asyncio.run_coroutine_threadsafe(
            client.call_tool(tool, arguments, read_timeout_seconds=self._call_timeout), self._loop
        )
        try:
            result = future.result(timeout=self._call_timeout + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TransientToolError(f"MCP server {server!r} did not answer in time.") from None
        except MCPError as exc:
            raise ToolError(f"MCP server {server!r} refused the call: {exc.error.message}") from exc
        except Exception as exc:
            raise TransientToolError(
                f"MCP server {server!r} could not be reached: {type(exc).__name__}: {exc}"
            ) from exc
        return _result(server, result)

    def close(self) -> None:
        """End every session (which stops the subprocesses) and the loop's thread."""
        self._clients.clear()
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        for holder in self._holders:
            try:
                holder.result(timeout=10)
            except Exception as exc:
                log.warning("MCP session ended badly: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _hold(
        self,
        server: McpServerConfig,
        ready: concurrent.futures.Future[tuple[Client, list[types.Tool]]],
    ) -> None:
        """Keep one session open, in one task, until `close()`: the SDK's task groups must be
        entered and left by the same task."""
        params = StdioServerParameters(
            command=server.command[0], args=server.command[1:], env=server.env
        )
        try:
            async with Client(params, read_timeout_seconds=self._call_timeout) as client:
                listing = await _list_tools(client)
                ready.set_result((client, listing))
                await self._stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                raise

    def _tool(self, server: str, remote: types.Tool) -> Tool:
        def handler(_ctx: ToolContext, arguments: dict[str, Any]) -> Any:
            return self.call(server, remote.name, arguments)

        schema = remote.input_schema or {"type": "object", "properties": {}}
        hints = remote.annotations
        return Tool.from_schema(
            _tool_name(server, remote.name),
            remote.description or remote.title or remote.name,
            schema,
            handler,
            # the server's word (MCP's `idempotentHint`); without it, not idempotent
            idempotent=bool(hints is not None and hints.idempotent_hint),
        )


def load_mcp_tools(
    servers: Sequence[McpServerConfig],
    registry: ToolRegistry,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    call_timeout: float = CALL_TIMEOUT,
) -> McpConnections:
    """Connect to `servers` and register their tools; `registry.close()` disconnects."""
    connections = McpConnections(
        servers, connect_timeout=connect_timeout, call_timeout=call_timeout
    ).open()
    registry.on_close(connections.close)
    for remote in connections.tools():
        registry.register(remote)
    return connections


async def _list_tools(client: Client) -> list[types.Tool]:
    listing: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        listing.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return listing


def _tool_name(server: str, tool: str) -> str:
    """`<server>__<tool>` within what both providers accept in a tool name."""
    return _UNSAFE.sub("_", f"{server}__{tool}")[:_NAME_LIMIT]


def _result(server: str, result: types.CallToolResult) -> Any:
    text = "\n".join(_text(block) for block in result.content)
    if result.is_error:
        raise ToolError(text or f"MCP server {server!r} reported an error.")
    if result.structured_content is not None:
        return result.structured_content
    return text


def _text(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ResourceLink):
        return f"[resource {block.uri}]"
    if isinstance(block, types.EmbeddedResource):
        return f"[resource {block.resource.uri}]"
    return f"[{block.type} content, {block.mime_type}]"
