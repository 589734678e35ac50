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
    type: ClassVar[str] = "TaskUpdated"

    task_id: int
    title: str | None = None
    description: str | None = None


class TaskCompleted(Event):
    type: ClassVar[str] = "TaskCompleted"

    task_id: int


class TaskReopened(Event):
    type: ClassVar[str] = "TaskReopened"

    task_id: int


class TaskDeleted(Event):
    type: ClassVar[str] = "TaskDeleted"

    task_id: int
