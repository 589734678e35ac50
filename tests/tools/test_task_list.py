"""The task list projection: pure, ids never reused, unknown events skipped."""

from __future__ import annotations

from datetime import UTC, datetime

from messagedb_agent.events import (
    Event,
    Metadata,
    Recorded,
    TaskAdded,
    TaskCompleted,
    TaskDeleted,
    TaskReopened,
    TaskUpdated,
    UnknownEvent,
)
from messagedb_agent.tools.task_list import Task, project_task_list


def recorded(*events: Event) -> list[Recorded[Event]]:
    return [
        Recorded(
            id=f"id-{position}",
            stream_name="tasks-ada",
            position=position,
            global_position=100 + position,
            time=datetime(2025, 1, 1, tzinfo=UTC),
            event=event,
            metadata=Metadata(),
        )
        for position, event in enumerate(events)
    ]


def test_empty_stream_is_an_empty_list_starting_at_id_one() -> None:
    state = project_task_list([])
    assert state.select() == []
    assert (state.next_id, state.version) == (1, -1)


def test_events_fold_into_the_current_tasks() -> None:
    state = project_task_list(
        recorded(
            TaskAdded(task_id=1, title="milk"),
            TaskAdded(task_id=2, title="bread", description="rye"),
            TaskUpdated(task_id=1, title="oat milk"),
            TaskCompleted(task_id=2),
        )
    )
    assert state.select() == [
        Task(1, "oat milk", None, False),
        Task(2, "bread", "rye", True),
    ]
    assert state.select("pending") == [Task(1, "oat milk")]
    assert state.select("completed") == [Task(2, "bread", "rye", True)]
    assert state.version == 3


def test_update_of_description_keeps_the_title() -> None:
    state = project_task_list(
        recorded(TaskAdded(task_id=1, title="milk"), TaskUpdated(task_id=1, description="2 l"))
    )
    assert state.get(1) == Task(1, "milk", "2 l")


def test_an_update_without_importance_keeps_the_flag() -> None:
    state = project_task_list(
        recorded(
            TaskAdded(task_id=1, title="milk"),
            TaskUpdated(task_id=1, important=True),
            TaskUpdated(task_id=1, title="oat milk"),
        )
    )
    assert state.get(1) == Task(1, "oat milk", important=True)


def test_reopened_task_is_pending_again() -> None:
    state = project_task_list(
        recorded(
            TaskAdded(task_id=1, title="milk"),
            TaskCompleted(task_id=1),
            TaskReopened(task_id=1),
        )
    )
    assert state.get(1) == Task(1, "milk", completed=False)


def test_deleted_ids_are_never_reused() -> None:
    state = project_task_list(
        recorded(
            TaskAdded(task_id=1, title="a"),
            TaskAdded(task_id=2, title="b"),
            TaskDeleted(task_id=2),
        )
    )
    assert [task.id for task in state.select()] == [1]
    assert state.next_id == 3


def test_unknown_events_and_unknown_ids_are_skipped() -> None:
    state = project_task_list(
        recorded(
            UnknownEvent(type_name="TaskArchived", data={"task_id": 1}),
            TaskCompleted(task_id=9),
            TaskAdded(task_id=1, title="a"),
            TaskDeleted(task_id=5),
        )
    )
    assert state.select() == [Task(1, "a")]
    assert state.version == 3


def test_projection_is_deterministic() -> None:
    events = recorded(TaskAdded(task_id=1, title="a"), TaskCompleted(task_id=1))
    assert project_task_list(events) == project_task_list(events)
