"""The engine's view of the tools layer: a registry plus the store the task tools write to."""

from __future__ import annotations

from messagedb_agent.engine.step import ToolCallContext, ToolRunResult
from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import ToolSpec
from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools.context import ToolContext
from messagedb_agent.tools.executor import execute_tool
from messagedb_agent.tools.registry import ToolRegistry


class RegistryTools:
    """Runs calls through the validating executor, acting as the thread's owner."""

    def __init__(
        self, registry: ToolRegistry, store: MessageStore | None, timeout: float = 10.0
    ) -> None:
        self.registry = registry
        self.store = store
        self.timeout = timeout
        self._specs = registry.specs()

    def specs(self) -> list[ToolSpec]:
        return self._specs

    def run(self, call: ToolCall, ctx: ToolCallContext) -> ToolRunResult:
        outcome = execute_tool(
            self.registry,
            call,
            ToolContext(
                owner=ctx.owner,
                stream_name=ctx.stream_name,
                step_id=ctx.step_id,
                tool_call_id=ctx.tool_call_id,
                store=self.store,
                now=ctx.now,
            ),
            self.timeout,
        )
        return ToolRunResult(
            ok=outcome.ok,
            result=outcome.result,
            error_message=outcome.error_message,
            error_kind=outcome.error_kind,
            retryable=outcome.retryable,
            execution_time_ms=outcome.execution_time_ms,
        )
