"""A user's task list as a pure projection of their `tasks-<user>` stream.

Ids are small integers the user can say aloud ("complete task 3"): the next id is one more
than the largest ever added, so a deleted task's id is never reused. Events for unknown ids
are skipped like unknown event types, so a damaged or newer stream still projects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import singledispatch
from types import MappingProxyType
from typing import Any, Literal

from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.tasks import (
    TaskAdded,
    TaskCompleted,
    TaskDeleted,
    TaskReopened,
    TaskUpdated,
)

StatusFilter = Literal["all", "pending", "completed"]


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    title: str
    description: str | None = None
    completed: bool = False
    important: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "completed": self.completed,
            "important": self.important,
        }


@dataclass(frozen=True, slots=True)
class TaskList:
    tasks: Mapping[int, Task] = field(default_factory=lambda: MappingProxyType({}))
    last_id: int = 0
    version: int = -1
    """Position of the last event read: the `expected_version` of the next write."""

    @property
    def next_id(self) -> int:
        return self.last_id + 1

    def get(self, task_id: int) -> Task | None:
        return self.tasks.get(task_id)

    def select(self, status: StatusFilter = "all") -> list[Task]:
        ordered = sorted(self.tasks.values(), key=lambda task: task.id)
        if status == "all":
            return ordered
        return [task for task in ordered if task.completed == (status == "completed")]


def project_task_list(events: Iterable[Recorded[Event]]) -> TaskList:
    return _fold(TaskList(), ((recorded.event, recorded.position) for recorded in events))


def evolve(state: TaskList, event: Event, position: int) -> TaskList:
    """The list after one more event, written at `position`."""
    return _fold(state, [(event, position)])


def _fold(state: TaskList, events: Iterable[tuple[Event, int]]) -> TaskList:
    tasks = dict(state.tasks)
    last_id, version = state.last_id, state.version
    for event, position in events:
        version = position
        if isinstance(event, TaskAdded):
            last_id = max(last_id, event.task_id)
        _apply(event, tasks)
    return TaskList(MappingProxyType(tasks), last_id, version)


@singledispatch
def _apply(event: Event, tasks: dict[int, Task]) -> None:
    """Events this projection does not know change nothing."""


@_apply.register
def _added(event: TaskAdded, tasks: dict[int, Task]) -> None:
    tasks[event.task_id] = Task(event.task_id, event.title, event.description)


@_apply.register
def _updated(event: TaskUpdated, tasks: dict[int, Task]) -> None:
    task = tasks.get(event.task_id)
    if task is not None:
        tasks[event.task_id] = replace(
            task,
            title=task.title if event.title is None else event.title,
            description=task.description if event.description is None else event.description,
            important=task.important if event.important is None else event.important,
        )


@_apply.register
def _completed(event: TaskCompleted, tasks: dict[int, Task]) -> None:
    task = tasks.get(event.task_id)
    if task is not None:
        tasks[event.task_id] = replace(task, completed=True)


@_apply.register
def _reopened(event: TaskReopened, tasks: dict[int, Task]) -> None:
    task = tasks.get(event.task_id)
    if task is not None:
        tasks[event.task_id] = replace(task, completed=False)


@_apply.register
def _deleted(event: TaskDeleted, tasks: dict[int, Task]) -> None:
    tasks.pop(event.task_id, None)
