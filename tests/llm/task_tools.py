"""An in-memory stand-in for the agent's tools, keeping the tool contract's names and shapes.

The offline model is tested on its own here, so its tools only need to answer the way the real
ones do; `converse` plays the engine's loop (call the model, run the calls, feed the results).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.llm.types import (
    AssistantTurn,
    LLMConfig,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)

FIXED_TIME = "2025-03-14T15:09:26+00:00"

SPECS = {
    "add_task": ToolSpec(
        "add_task",
        "Add a task.",
        {
            "type": "object",
            "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
            "required": ["title"],
        },
    ),
    "list_tasks": ToolSpec(
        "list_tasks",
        "List tasks.",
        {
            "type": "object",
            "properties": {"status": {"enum": ["all", "pending", "completed"]}},
        },
    ),
    "complete_task": ToolSpec(
        "complete_task",
        "Complete a task.",
        {
            "type": "object",
            "properties": {"task_id": {"type": "integer"}},
            "required": ["task_id"],
        },
    ),
    "update_task": ToolSpec(
        "update_task",
        "Change a task.",
        {
            "type": "object",
            "properties": {
                "task_id": {"type": "integer"},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "important": {"type": "boolean"},
            },
            "required": ["task_id"],
        },
    ),
    "delete_task": ToolSpec(
        "delete_task",
        "Delete a task.",
        {
            "type": "object",
            "properties": {"task_id": {"type": "integer"}},
            "required": ["task_id"],
        },
    ),
    "get_current_time": ToolSpec(
        "get_current_time",
        "The current time.",
        {"type": "object", "properties": {"timezone": {"type": "string"}}},
    ),
    "calculate": ToolSpec(
        "calculate",
        "Evaluate arithmetic.",
        {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    ),
    "echo": ToolSpec(
        "echo",
        "Echo a message.",
        {
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
    ),
}
ALL_TOOLS = list(SPECS.values())
CONFIG = LLMConfig(model="offline")


class ToolFailure(Exception):
    pass


@dataclass
class TaskTools:
    """The eight tools over a dict of tasks; every call is recorded as (name, arguments)."""

    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    def seed(self, *titles: str, completed: tuple[str, ...] = ()) -> None:
        for title in titles:
            self.add_task(title=title)
        for task in self.tasks.values():
            if task["title"] in completed:
                task["completed"] = True

    def run(self, name: str, arguments: dict[str, Any]) -> Any:
        self.calls.append((name, arguments))
        if name in self.failing:
            raise ToolFailure(f"{name} is out of order")
        handler: Callable[..., Any] = getattr(self, name)
        return handler(**arguments)

    def add_task(self, title: str, description: str | None = None) -> dict[str, Any]:
        task_id = max(self.tasks, default=0) + 1
        self.tasks[task_id] = {
            "id": task_id,
            "title": title,
            "description": description,
            "completed": False,
            "important": False,
        }
        return {"task": dict(self.tasks[task_id])}

    def list_tasks(self, status: str = "all") -> dict[str, Any]:
        wanted = {"all": (True, False), "pending": (False,), "completed": (True,)}[status]
        return {"tasks": [dict(t) for t in self.tasks.values() if t["completed"] in wanted]}

    def _get(self, task_id: int) -> dict[str, Any]:
        if task_id not in self.tasks:
            raise ToolFailure(f"task {task_id} not found")
        return self.tasks[task_id]

    def complete_task(self, task_id: int) -> dict[str, Any]:
        task = self._get(task_id)
        task["completed"] = True
        return {"task": dict(task)}

    def update_task(
        self,
        task_id: int,
        title: str | None = None,
        description: str | None = None,
        important: bool | None = None,
    ) -> dict[str, Any]:
        task = self._get(task_id)
        if important is not None:
            task["important"] = important
        if title is not None:
            task["title"] = title
        if description is not None:
            task["description"] = description
        return {"task": dict(task)}

    def delete_task(self, task_id: int) -> dict[str, Any]:
        self._get(task_id)
        return {"deleted": self.tasks.pop(task_id)}

    def get_current_time(self, timezone: str = "UTC") -> dict[str, Any]:
        return {"time": FIXED_TIME, "timezone": timezone}

    def calculate(self, expression: str) -> dict[str, Any]:
        allowed = set("0123456789+-*/().^ ")
        if not set(expression) <= allowed:
            raise ToolFailure(f"cannot evaluate {expression!r}")
        value = eval(expression.replace("^", "**"), {"__builtins__": {}})  # noqa: S307
        return {"expression": expression, "result": value}

    def echo(self, message: str) -> dict[str, Any]:
        return {"message": message}


@dataclass
class Conversation:
    """The engine's loop in miniature: every model response and tool result is kept."""

    tools: TaskTools = field(default_factory=TaskTools)
    specs: list[ToolSpec] = field(default_factory=lambda: list(ALL_TOOLS))
    messages: list[Message] = field(default_factory=list)
    responses: list[LLMResponse] = field(default_factory=list)
    model: OfflineModel = field(default_factory=OfflineModel)

    def say(self, text: str, *, max_calls: int = 8) -> str:
        """Sends a user message and runs model and tools until the model answers."""
        self.messages.append(UserTurn(text))
        for _ in range(max_calls):
            response = self.step()
            if not response.tool_calls:
                return response.text
            self.run_calls(response)
        raise AssertionError(f"no answer after {max_calls} model calls")

    def step(self) -> LLMResponse:
        response = self.model.call(list(self.messages), self.specs, CONFIG)
        self.responses.append(response)
        self.messages.append(AssistantTurn(response.text, response.tool_calls))
        return response

    def run_calls(self, response: LLMResponse) -> None:
        for call in response.tool_calls:
            try:
                content = self.tools.run(call.name, dict(call.arguments))
            except ToolFailure as failure:
                self.messages.append(
                    ToolResult(call.id, call.name, {"error": str(failure)}, is_error=True)
                )
            else:
                self.messages.append(ToolResult(call.id, call.name, content))


_INTERNAL = re.compile(
    r"\b(?:add_task|list_tasks|complete_task|update_task|delete_task|get_current_time|"
    r"task_id|status|title|description|expression|calculate|echo|tool|schema|argument)s?\b",
    re.IGNORECASE,
)


def internal_names(text: str, reply: str) -> list[str]:
    """Internal names in the reply that the user's own words did not contain."""
    said = {word.lower() for word in re.findall(r"[\w']+", text)}
    return [name for name in _INTERNAL.findall(reply) if name.lower() not in said]
