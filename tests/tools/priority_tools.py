"""A deployer's own tool module, as `TOOL_MODULES` names it in the tests."""

from __future__ import annotations

from typing import Any, Literal

from messagedb_agent.tools import ToolContext, echo, tool

__all__ = ["echo", "set_priority"]  # `echo` is imported, not defined here: it is not taken


@tool
def set_priority(
    ctx: ToolContext, task_id: int, level: Literal["low", "high"] = "low"
) -> dict[str, Any]:
    """Set a task's priority.

    Args:
        task_id: The task's number, as the user sees it.
        level: How urgent it is.
    """
    return {"task_id": task_id, "level": level, "owner": ctx.owner}


def helper() -> str:
    """Not a tool: plain functions in a tool module are left alone."""
    return "helper"
