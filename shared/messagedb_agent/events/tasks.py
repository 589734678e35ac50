"""The task-management domain: one `tasks-<user>` stream per user."""

from __future__ import annotations

from typing import ClassVar

from messagedb_agent.events.base import Event


class TaskAdded(Event):
    type: ClassVar[str] = "TaskAdded"

    task_id: int
    title: str
    description: str | None = None


class TaskUpdated(Event):
    """Only the fields given change. `important` came later as an optional field, so older
    events read as before and an older reader ignores it (events ignore unknown fields)."""

    type: ClassVar[str] = "TaskUpdated"

    task_id: int
    title: str | None = None
    description: str | None = None
    important: bool | None = None


class TaskCompleted(Event):
    type: ClassVar[str] = "TaskCompleted"

    task_id: int


class TaskReopened(Event):
    type: ClassVar[str] = "TaskReopened"

    task_id: int


class TaskDeleted(Event):
    type: ClassVar[str] = "TaskDeleted"

    task_id: int
