"""Task-management tools, event-sourced in one `tasks-<user>` stream per user.

Every write is read-decide-write with `expected_version`, so two concurrent calls cannot both
take task id 5; the loser re-reads and decides again. The message id is derived from the step
id and tool call id, so a redelivered call finds its own event already in the stream and
returns what it recorded the first time instead of writing again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import StringConstraints

from messagedb_agent.events.base import Event, Metadata, Recorded
from messagedb_agent.events.ids import message_id
from messagedb_agent.events.mapper import from_messages, to_message
from messagedb_agent.events.tasks import (
    TaskAdded,
    TaskCompleted,
    TaskDeleted,
    TaskUpdated,
)
from messagedb_agent.store import stream_name
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import (
    ConcurrencyError,
    DuplicateMessageError,
    StoreUnavailableError,
)
from messagedb_agent.tools.context import ToolContext
from messagedb_agent.tools.errors import (
    ToolError,
    ToolForbiddenError,
    ToolInputError,
    TransientToolError,
)
from messagedb_agent.tools.registry import tool
from messagedb_agent.tools.task_list import (
    StatusFilter,
    Task,
    TaskList,
    evolve,
    project_task_list,
)

TASKS_CATEGORY = "tasks"
WRITE_ATTEMPTS = 5

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]

TaskEvent = TaskAdded | TaskUpdated | TaskCompleted | TaskDeleted
# What a call tells the model, from the list before and after its change and the task changed.
Describe = Callable[[TaskList, TaskList, int], dict[str, Any]]


def tasks_stream(owner: str) -> str:
    """`tasks-<owner>`: one stream per user, named by `owner_stream_id`."""
    return stream_name.build(TASKS_CATEGORY, owner_stream_id(owner))


def owner_stream_id(owner: str) -> str:
    """The owner id itself when it is a valid stream id, else `~` and a SHA-256 prefix of it.

    Owner ids with characters Message DB stream ids do not allow (spaces, `+`, non-ASCII) or
    that are too long are hashed. A valid owner id that itself starts with `~` is hashed too,
    so no owner can name another owner's stream.
    """
    if not owner:
        raise ToolForbiddenError("There is no signed-in user to act for.")
    return stream_name.entity_id(TASKS_CATEGORY, owner)


def read_task_list(store: MessageStore, owner: str) -> TaskList:
    """The owner's current task list (for callers outside a tool call, such as an API)."""
    return project_task_list(from_messages(store.read_stream(tasks_stream(owner))))


@tool(idempotent=True)
def add_task(
    ctx: ToolContext, title: Title, description: Description | None = None
) -> dict[str, Any]:
    """Add a task to the user's task list.

    Args:
        title: A short title, e.g. "Buy milk".
        description: Optional details.
    """

    def decide(state: TaskList) -> TaskEvent:
        return TaskAdded(task_id=state.next_id, title=title, description=description or None)

    return _record(ctx, decide, _task_after)


@tool(idempotent=True)
def list_tasks(ctx: ToolContext, status: StatusFilter = "all") -> dict[str, Any]:
    """List the user's tasks, oldest first, with their ids.

    Args:
        status: Which tasks to show: all of them, only pending ones, or only completed ones.
    """
    state = project_task_list(_read(_store(ctx), tasks_stream(ctx.owner)))
    return {"tasks": [task.to_dict() for task in state.select(status)]}


@tool(idempotent=True)
def complete_task(ctx: ToolContext, task_id: int) -> dict[str, Any]:
    """Mark one of the user's tasks as completed.

    Args:
        task_id: The task's id, as list_tasks shows it.
    """

    def decide(state: TaskList) -> TaskEvent:
        _existing(state, task_id)
        return TaskCompleted(task_id=task_id)

    return _record(ctx, decide, _task_after)


@tool(idempotent=True)
def update_task(
    ctx: ToolContext,
    task_id: int,
    title: Title | None = None,
    description: Description | None = None,
    important: bool | None = None,
) -> dict[str, Any]:
    """Change the title, the description or the importance of one of the user's tasks.

    Args:
        task_id: The task's id, as list_tasks shows it.
        title: The new title; leave it out to keep the current one.
        description: The new description; leave it out to keep the current one.
        important: true to mark the task important, false to unmark it; leave it out to keep it.
    """
    if title is None and description is None and important is None:
        raise ToolInputError(
            "Give a new title, a new description or an importance to update a task."
        )

    def decide(state: TaskList) -> TaskEvent:
        _existing(state, task_id)
        return TaskUpdated(
            task_id=task_id, title=title, description=description, important=important
        )

    return _record(ctx, decide, _task_after)


@tool(idempotent=True)
def delete_task(ctx: ToolContext, task_id: int) -> dict[str, Any]:
    """Delete one of the user's tasks for good.

    Args:
        task_id: The task's id, as list_tasks shows it.
    """

    def decide(state: TaskList) -> TaskEvent:
        _existing(state, task_id)
        return TaskDeleted(task_id=task_id)

    def deleted(before: TaskList, after: TaskList, task_id: int) -> dict[str, Any]:
        return {"deleted": _existing(before, task_id).to_dict()}

    return _record(ctx, decide, deleted)


# -- read, decide, write -------------------------------------------------------------------


def _record(
    ctx: ToolContext, decide: Callable[[TaskList], TaskEvent], describe: Describe
) -> dict[str, Any]:
    """Decide on the latest list and append once; a redelivered call replays its outcome."""
    store = _store(ctx)
    stream = tasks_stream(ctx.owner)
    own_id = message_id(ctx.step_id, f"tasks/{ctx.tool_call_id}")
    for _ in range(WRITE_ATTEMPTS):
        events = _read(store, stream)
        recorded = _replay(events, own_id, describe)
        if recorded is not None:
            return recorded
        before = project_task_list(events)
        event = decide(before)
        after = evolve(before, event, before.version + 1)
        if after.tasks == before.tasks:
            return describe(before, after, event.task_id)
        message = to_message(event, _metadata(ctx), own_id)
        try:
            store.write_message(
                message.id, stream, message.type, message.data, message.metadata, before.version
            )
        except (ConcurrencyError, DuplicateMessageError):
            continue
        except StoreUnavailableError as exc:
            raise _unavailable() from exc
        return describe(before, after, event.task_id)
    raise TransientToolError("The task list is busy right now; try again.")


def _replay(
    events: Sequence[Recorded[Event]], own_id: str, describe: Describe
) -> dict[str, Any] | None:
    for index, recorded in enumerate(events):
        if recorded.id == own_id:
            event = recorded.event
            if not isinstance(event, TaskEvent):
                raise ToolError(f"This call already recorded an unexpected {recorded.type}.")
            before = project_task_list(events[:index])
            return describe(before, evolve(before, event, recorded.position), event.task_id)
    return None


def _task_after(before: TaskList, after: TaskList, task_id: int) -> dict[str, Any]:
    return {"task": _existing(after, task_id).to_dict()}


def _existing(state: TaskList, task_id: int) -> Task:
    task = state.get(task_id)
    if task is None:
        ids = ", ".join(str(task.id) for task in state.select()) or "none yet"
        raise ToolInputError(
            f"I don't see task {task_id} in the user's list (task ids: {ids}). "
            "Call list_tasks to see the current tasks."
        )
    return task


def _metadata(ctx: ToolContext) -> Metadata:
    return Metadata(
        correlation_stream_name=ctx.stream_name,
        causation_message_stream_name=ctx.stream_name,
        user_id=ctx.owner,
        step_id=ctx.step_id,
    )


def _store(ctx: ToolContext) -> MessageStore:
    if ctx.store is None:
        raise ToolError("The task list is not available here (no message store).")
    return ctx.store


def _read(store: MessageStore, stream: str) -> list[Recorded[Event]]:
    try:
        return from_messages(store.read_stream(stream))
    except StoreUnavailableError as exc:
        raise _unavailable() from exc


def _unavailable() -> TransientToolError:
    return TransientToolError("The task list is unavailable right now; try again shortly.")
