"""What the offline stand-in says about finished tool calls: one friendly line each."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from messagedb_agent.events.values import ToolCall
from messagedb_agent.llm.offline_requests import (
    AddTask,
    Calculate,
    CompleteTask,
    CurrentTime,
    DeleteTask,
    Echo,
    ListTasks,
    RenameTask,
    Request,
)
from messagedb_agent.llm.types import ToolResult, ToolSpec

_EXAMPLES = (
    ("add_task", "“add a task to buy milk” or “remind me to call mom”"),
    ("list_tasks", "“list my tasks” or “show pending tasks”"),
    ("complete_task", "“mark milk done”"),
    ("update_task", "“rename milk to oat milk”"),
    ("delete_task", "“delete the milk task”"),
    ("get_current_time", "“what time is it”"),
    ("calculate", "“what is 12*(3+4)”"),
    ("echo", "“echo hello”"),
)


def describe(request: Request, call: ToolCall, result: ToolResult | None) -> str:
    """One friendly line about a finished call, from its result."""
    error = error_of(result)
    if error is not None:
        return f"I couldn't {verb(request)}: {error}"
    content = result.content if result else None
    match request:
        case AddTask(title=title):
            task = _task(content, "task") or {"title": title}
            return f"Added {_label(task)}."
        case ListTasks(status=status):
            return _listing(tasks_in(result), status)
        case CompleteTask():
            return f"Marked {_label(_task(content, 'task'))} as done."
        case DeleteTask():
            return f"Deleted {_label(_task(content, 'deleted'))}."
        case RenameTask(new_title=new_title):
            task = _task(content, "task")
            number = task.get("id", call.arguments.get("task_id"))
            return f"Renamed task #{number} to “{task.get('title', new_title)}”."
        case CurrentTime():
            return _time_line(content)
        case Calculate(expression=expression):
            return _calculation_line(content, expression)
        case Echo(message=message):
            echoed = content.get("message") if isinstance(content, dict) else content
            return str(echoed if echoed is not None else message)


def verb(request: Request) -> str:
    match request:
        case AddTask(title=title):
            return f"add “{title}”"
        case ListTasks():
            return "list your tasks"
        case CompleteTask(ref=ref):
            return f"complete “{ref.text}”"
        case DeleteTask(ref=ref):
            return f"delete “{ref.text}”"
        case RenameTask(ref=ref, new_title=new_title):
            return f"rename “{ref.text}” to “{new_title}”"
        case CurrentTime():
            return "tell the time"
        case Calculate(expression=expression):
            return f"calculate {expression}"
        case Echo():
            return "echo that"


def gave_up(request: Request) -> str:
    return f"I stopped before I could {verb(request)}: it took too many steps."


def error_of(result: ToolResult | None) -> str | None:
    """The problem a result reports, or None when it succeeded."""
    if result is None:
        return "the tool returned no result."
    content = result.content
    if isinstance(content, dict) and "error" in content:
        detail = content["error"]
        message = detail.get("message", detail) if isinstance(detail, dict) else detail
        return _sentence(str(message))
    if result.is_error:
        return _sentence(str(content))
    return None


def _sentence(text: str) -> str:
    text = text.strip() or "an unknown error"
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _task(content: Any, key: str) -> dict[str, Any]:
    value = content.get(key) if isinstance(content, dict) else None
    return value if isinstance(value, dict) else {}


def tasks_in(result: ToolResult | None) -> list[dict[str, Any]]:
    content = result.content if result else None
    tasks = content.get("tasks") if isinstance(content, dict) else content
    return [task for task in tasks if isinstance(task, dict)] if isinstance(tasks, list) else []


def _label(task: dict[str, Any]) -> str:
    number = f"task #{task['id']}" if task.get("id") is not None else "the task"
    return f"{number} “{task['title']}”" if task.get("title") else number


def _listing(tasks: list[dict[str, Any]], status: str) -> str:
    kind = "" if status == "all" else f"{status} "
    if not tasks:
        return f"You have no {kind}tasks."
    lines = [f"Your {kind}tasks:"]
    for task in tasks:
        mark = "x" if task.get("completed") else " "
        line = f"- [{mark}] #{task.get('id')} {task.get('title')}"
        if task.get("description"):
            line += f" ({task['description']})"
        lines.append(line)
    return "\n".join(lines)


def _time_line(content: Any) -> str:
    if not isinstance(content, dict) or "time" not in content:
        return f"The time is {content}."
    zone = content.get("timezone", "UTC")
    try:
        moment = datetime.fromisoformat(str(content["time"]))
    except ValueError:
        return f"It is {content['time']} ({zone})."
    return f"It is {moment:%H:%M} on {moment:%A, %d %B %Y} ({zone})."


def _calculation_line(content: Any, expression: str) -> str:
    value = content.get("result") if isinstance(content, dict) else content
    shown = content.get("expression", expression) if isinstance(content, dict) else expression
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, float):
        value = f"{value:.12g}"
    return f"{shown} = {value}"


def foreign_summary(results: list[ToolResult]) -> str:
    """Results of calls another model made: shown plainly, since no request of ours explains them."""
    lines = ["Here is what the tools returned:"]
    lines.extend(
        f"- {r.name}: {json.dumps(r.content, sort_keys=True, default=str)}" for r in results
    )
    return "\n".join(lines)


def help_text(available: dict[str, ToolSpec]) -> str:
    examples = [f"- {example}" for tool, example in _EXAMPLES if tool in available]
    if not examples:
        return (
            "I'm the offline stand-in model and no tools are available here, so I can only "
            "chat in this fixed way. Set MODEL_NAME to a Gemini or Claude model for real answers."
        )
    return "\n".join(
        [
            "I'm the offline stand-in model, so I only understand a few plain requests. Try:",
            *examples,
        ]
    )
