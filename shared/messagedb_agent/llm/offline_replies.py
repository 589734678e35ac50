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
    DeleteCompleted,
    DeleteTask,
    DescribeTask,
    Echo,
    ListTasks,
    MarkImportant,
    RenameTask,
    Request,
)
from messagedb_agent.llm.types import ToolResult, ToolSpec

_EXAMPLES = (
    ("add_task", "“add a task to buy milk” or “remind me to call mom”"),
    ("list_tasks", "“list my tasks” or “show pending tasks”"),
    ("complete_task", "“mark milk done”"),
    ("update_task", "“rename milk to oat milk” or “mark milk important”"),
    ("delete_task", "“delete the milk task”"),
    ("get_current_time", "“what time is it”"),
    ("calculate", "“what is 12*(3+4)”"),
    ("echo", "“echo hello”"),
)


def describe(request: Request, call: ToolCall, result: ToolResult | None) -> str:
    """One friendly line about a finished call, from its result."""
    error = error_of(result)
    if error is not None:
        return _problem(request, call, result, error)
    content = result.content if result else None
    match request:
        case AddTask(title=title):
            task = _task(content, "task") or {"title": title}
            return f"Added {_label(task)}."
        case ListTasks(status=status, count=count):
            return _listing(tasks_in(result), status, count=count)
        case CompleteTask():
            return f"Marked {_label(_task(content, 'task'))} as done."
        case DeleteTask():
            return f"Deleted {_label(_task(content, 'deleted'))}."
        case RenameTask(new_title=new_title):
            task = _task(content, "task")
            number = task.get("id", call.arguments.get("task_id"))
            return f"Renamed task #{number} to “{task.get('title', new_title)}”."
        case DescribeTask(description=description):
            task = _task(content, "task")
            shown = task.get("description") or description
            return f"Updated the details of {_label(task)}: “{shorten(str(shown), 80)}”."
        case MarkImportant(important=important):
            flag = "as important" if important else "as no longer important"
            return f"Marked {_label(_task(content, 'task'))} {flag}."
        case DeleteCompleted():
            return cleared([(call, result)])
        case CurrentTime():
            return _time_line(content)
        case Calculate(expression=expression):
            return _calculation_line(content, expression)
        case Echo(message=message):
            echoed = content.get("message") if isinstance(content, dict) else content
            return str(echoed if echoed is not None else message)


# Tool errors are written for a model ("…Call list_tasks…"); the user reads these instead.
_RETRY_KINDS = frozenset({"timeout", "transient", "unavailable", "busy"})
_TASK_CHANGES = (CompleteTask, DeleteTask, RenameTask, DescribeTask, MarkImportant, DeleteCompleted)


def _problem(request: Request, call: ToolCall, result: ToolResult | None, error: str) -> str:
    """What went wrong, said for the user: the tool's own message only when it has no kind
    (it did not come from this engine's tools), and then shortened."""
    content = result.content if result else None
    kind = content.get("kind") if isinstance(content, dict) else None
    if result is None:
        return f"I couldn't {verb(request)}: something went wrong; please try again."
    if isinstance(content, dict) and isinstance(content.get("declined"), str):
        return f"OK, I didn't {verb(request)}: {shorten(content['declined'], 160)}."
    if kind is None:
        return f"I couldn't {verb(request)}: {shorten(error, 160)}"
    task_id = call.arguments.get("task_id")
    if kind == "invalid_arguments" and isinstance(request, _TASK_CHANGES) and task_id is not None:
        return f"I don't see task #{task_id} in your list; say “list my tasks” to see them."
    if kind == "invalid_arguments" and isinstance(request, AddTask):
        return f"I couldn't {verb(request)}: that task name is too long or not valid."
    if kind == "invalid_arguments":
        return f"I couldn't {verb(request)}: that doesn't look right to me."
    if kind == "forbidden":
        return f"I couldn't {verb(request)}: you're not allowed to do that."
    if kind in _RETRY_KINDS or (isinstance(content, dict) and "try again" in error):
        return f"I couldn't {verb(request)} right now; please try again in a moment."
    return f"I couldn't {verb(request)}: something went wrong on my side; please try again."


def trouble(result: ToolResult | None) -> str:
    """Why the task list could not be read, for the user: never the tool's words to the model."""
    error = error_of(result) or "something went wrong."
    content = result.content if result else None
    if result is not None and not (isinstance(content, dict) and "kind" in content):
        return shorten(error, 160)
    return "something went wrong; please try again in a moment."


def shorten(text: str, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters: a user's long words are not echoed back."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verb(request: Request) -> str:
    match request:
        case AddTask(title=title):
            return f"add “{shorten(title)}”"
        case ListTasks():
            return "list your tasks"
        case CompleteTask(ref=ref):
            return f"complete “{shorten(ref.text)}”"
        case DeleteTask(ref=ref):
            return f"delete “{shorten(ref.text)}”"
        case RenameTask(ref=ref, new_title=new_title):
            return f"rename “{shorten(ref.text)}” to “{shorten(new_title)}”"
        case DescribeTask(ref=ref):
            return f"update the description of “{shorten(ref.text)}”"
        case MarkImportant(ref=ref, important=important):
            return f"mark “{shorten(ref.text)}” as {'' if important else 'not '}important"
        case DeleteCompleted():
            return "delete your completed tasks"
        case CurrentTime():
            return "tell the time"
        case Calculate(expression=expression):
            return f"work out {shorten(expression)}"
        case Echo():
            return "echo that"


def gave_up(request: Request) -> str:
    return f"I stopped before I could {verb(request)}: it took too many steps."


def error_of(result: ToolResult | None) -> str | None:
    """The problem a result reports, or None when it succeeded."""
    if result is None:
        return "the tool returned no result."
    content = result.content
    if isinstance(content, dict) and isinstance(content.get("declined"), str):
        return _sentence(content["declined"])
    if isinstance(content, dict) and isinstance(content.get("in_doubt"), str):
        return _sentence(content["in_doubt"])
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
    return f"{number} “{shorten(str(task['title']), 80)}”" if task.get("title") else number


def cleared(deletions: list[tuple[ToolCall, ToolResult | None]]) -> str:
    """One line for deleting every completed task: what went, and what could not."""
    gone = [_label(_task(r.content, "deleted")) for _, r in deletions if error_of(r) is None and r]
    failed = [f"#{c.arguments.get('task_id')}" for c, r in deletions if error_of(r) is not None]
    noun = "task" if len(gone) == 1 else "tasks"
    line = f"Deleted {len(gone)} completed {noun}: {', '.join(gone)}." if gone else ""
    if failed:
        line += f" I couldn't delete {', '.join(failed)}; please try again."
    return line.strip()


def _listing(tasks: list[dict[str, Any]], status: str, *, count: bool = False) -> str:
    kind = "" if status == "all" else f"{status} "
    if not tasks:
        return f"You have no {kind}tasks."
    noun = "task" if len(tasks) == 1 else "tasks"
    lines = [f"You have {len(tasks)} {kind}{noun}:" if count else f"Your {kind}tasks:"]
    for task in tasks:
        mark = "x" if task.get("completed") else " "
        line = f"- [{mark}] #{task.get('id')} {task.get('title')}"
        if task.get("important"):
            line += " (important)"
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
    """Results of calls another model made (the thread switched models): shown plainly and short,
    since no request of ours explains them, and without the tools' internal names."""
    lines = ["Here is what I found:"]
    lines.extend(
        f"- {shorten(json.dumps(r.content, sort_keys=True, default=str), 200)}" for r in results
    )
    return "\n".join(lines)


HELP_START = "I'm the offline stand-in model"
SHORT_HELP = "Sorry, I didn't get that. Say “help” to see what I can do."


def help_text(available: dict[str, ToolSpec], *, again: bool = False) -> str:
    """Examples of what the stand-in understands; once shown in a thread, later misses get one
    short line instead, so the same list is not repeated on every turn."""
    if again and any(tool for tool, _ in _EXAMPLES if tool in available):
        return SHORT_HELP
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
