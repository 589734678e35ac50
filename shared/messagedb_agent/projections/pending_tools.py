"""Tool calls the model asked for that have no final outcome yet."""

from __future__ import annotations

from collections.abc import Sequence

from messagedb_agent.events.agent import LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.events.tool import ToolExecutionCompleted, ToolExecutionFailed
from messagedb_agent.events.values import ToolCall


def project_pending_tool_calls(events: Sequence[Recorded[Event]]) -> tuple[ToolCall, ...]:
    """The unresolved calls of the latest response that asked for tools, in the model's order."""
    calls: tuple[ToolCall, ...] = ()
    step_id: str | None = None
    done: set[str] = set()
    for recorded in events:
        event = recorded.event
        if isinstance(event, LLMResponseReceived):
            calls, step_id, done = event.tool_calls, tool_step_id(event.step_id), set()
        elif (isinstance(event, ToolExecutionCompleted) and event.step_id == step_id) or (
            isinstance(event, ToolExecutionFailed)
            and event.step_id == step_id
            and not event.retryable
        ):
            done.add(event.tool_call_id)
    return tuple(call for call in calls if call.id not in done)
