"""Tools the agent can call: typed functions with schemas, a validating executor, MCP both ways."""

from messagedb_agent.tools.builtin import calculate, echo, get_current_time
from messagedb_agent.tools.context import ToolContext, ToolOutcome
from messagedb_agent.tools.errors import (
    ToolError,
    ToolForbiddenError,
    ToolInputError,
    TransientToolError,
)
from messagedb_agent.tools.executor import RegistryTools, execute_tool
from messagedb_agent.tools.registry import Tool, ToolRegistry, tool
from messagedb_agent.tools.tasks import (
    add_task,
    complete_task,
    delete_task,
    list_tasks,
    update_task,
)

BUILTIN_TOOLS = (get_current_time, calculate, echo)
TASK_TOOLS = (add_task, list_tasks, complete_task, update_task, delete_task)


def default_registry() -> ToolRegistry:
    """A fresh registry with the built-in and the task-management tools."""
    return ToolRegistry([*BUILTIN_TOOLS, *TASK_TOOLS])


__all__ = [
    "BUILTIN_TOOLS",
    "TASK_TOOLS",
    "RegistryTools",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolForbiddenError",
    "ToolInputError",
    "ToolOutcome",
    "ToolRegistry",
    "TransientToolError",
    "default_registry",
    "execute_tool",
    "tool",
]
