"""The task tools against the real Message DB: one event-sourced list per user."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.tools.contexts import MakeContext

from messagedb_agent.events import ToolCall, from_messages
from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools import (
    ToolError,
    ToolForbiddenError,
    ToolInputError,
    default_registry,
    execute_tool,
)
from messagedb_agent.tools.tasks import (
    add_task,
    complete_task,
    delete_task,
    list_tasks,
    owner_stream_id,
    read_task_list,
    tasks_stream,
    update_task,
)


def task(
    id: int,
    title: str,
    description: str | None = None,
    completed: bool = False,
    important: bool = False,
) -> dict[str, Any]:
    return {
        "id": id,
        "title": title,
        "description": description,
        "completed": completed,
        "important": important,
    }


def test_added_tasks_get_ids_one_to_n(make_ctx: MakeContext) -> None:
    results = [add_task(make_ctx(), title) for title in ("milk", "bread", "eggs")]
    assert [r["task"]["id"] for r in results] == [1, 2, 3]
    assert results[1] == {"task": task(2, "bread")}
    assert list_tasks(make_ctx()) == {"tasks": [task(1, "milk"), task(2, "bread"), task(3, "eggs")]}


def test_add_records_one_event_with_user_and_correlation(
    make_ctx: MakeContext, store: MessageStore, owner: str
) -> None:
    ctx = make_ctx()
    add_task(ctx, "milk", "two litres")
    [message] = store.read_stream(tasks_stream(owner))
    assert message.type == "TaskAdded"
    assert message.data == {"task_id": 1, "title": "milk", "description": "two litres"}
    assert message.metadata is not None
    assert message.metadata["userId"] == owner
    assert message.metadata["correlationStreamName"] == ctx.stream_name
    assert message.metadata["causationMessageStreamName"] == ctx.stream_name
    assert message.metadata["stepId"] == ctx.step_id


def test_complete_update_and_delete(make_ctx: MakeContext) -> None:
    add_task(make_ctx(), "milk")
    add_task(make_ctx(), "bread")
    assert complete_task(make_ctx(), 1) == {"task": task(1, "milk", completed=True)}
    assert update_task(make_ctx(), 2, title="rye bread", description="sliced") == {
        "task": task(2, "rye bread", "sliced")
    }
    assert update_task(make_ctx(), 2, description="whole") == {
        "task": task(2, "rye bread", "whole")
    }
    assert list_tasks(make_ctx(), "pending") == {"tasks": [task(2, "rye bread", "whole")]}
    assert list_tasks(make_ctx(), "completed") == {"tasks": [task(1, "milk", completed=True)]}
    assert delete_task(make_ctx(), 1) == {"deleted": task(1, "milk", completed=True)}
    assert list_tasks(make_ctx()) == {"tasks": [task(2, "rye bread", "whole")]}


def test_ids_are_not_reused_after_a_delete(make_ctx: MakeContext) -> None:
    add_task(make_ctx(), "a")
    add_task(make_ctx(), "b")
    delete_task(make_ctx(), 2)
    assert add_task(make_ctx(), "c")["task"]["id"] == 3


@pytest.mark.parametrize(
    "action",
    [
        lambda ctx: complete_task(ctx, 7),
        lambda ctx: update_task(ctx, 7, title="x"),
        lambda ctx: delete_task(ctx, 7),
    ],
)
def test_unknown_task_id_is_an_input_error(make_ctx: MakeContext, action: Any) -> None:
    add_task(make_ctx(), "milk")
    with pytest.raises(ToolInputError, match="I don't see task 7") as raised:
        action(make_ctx())
    assert "task ids: 1" in str(raised.value)


def test_unknown_task_id_through_the_executor_is_not_retryable(make_ctx: MakeContext) -> None:
    call = ToolCall(id="c1", name="complete_task", arguments={"task_id": 42})
    outcome = execute_tool(default_registry(), call, make_ctx())
    assert not outcome.ok
    assert (outcome.error_kind, outcome.retryable) == ("invalid_arguments", False)
    assert "I don't see task 42" in (outcome.error_message or "")


def test_update_needs_something_to_change(make_ctx: MakeContext) -> None:
    add_task(make_ctx(), "milk")
    with pytest.raises(ToolInputError, match="a new title, a new description or an importance"):
        update_task(make_ctx(), 1)


def test_a_task_is_marked_important_and_unmarked_keeping_the_rest(make_ctx: MakeContext) -> None:
    add_task(make_ctx(), "milk", "2 l")

    marked = update_task(make_ctx(), 1, important=True)
    renamed = update_task(make_ctx(), 1, title="oat milk")
    unmarked = update_task(make_ctx(), 1, important=False)

    assert marked == {"task": task(1, "milk", "2 l", important=True)}
    assert renamed == {"task": task(1, "oat milk", "2 l", important=True)}
    assert unmarked == {"task": task(1, "oat milk", "2 l")}


def test_completing_a_completed_task_writes_nothing(
    make_ctx: MakeContext, store: MessageStore, owner: str
) -> None:
    add_task(make_ctx(), "milk")
    complete_task(make_ctx(), 1)
    assert complete_task(make_ctx(), 1) == {"task": task(1, "milk", completed=True)}
    assert store.stream_version(tasks_stream(owner)) == 1


def test_blank_title_is_refused_by_validation(make_ctx: MakeContext) -> None:
    call = ToolCall(id="c1", name="add_task", arguments={"title": "   "})
    outcome = execute_tool(default_registry(), call, make_ctx())
    assert outcome.error_kind == "invalid_arguments"
    assert "'title'" in (outcome.error_message or "")


def test_users_do_not_see_each_others_tasks(make_ctx: MakeContext) -> None:
    alice, bob = f"alice{uuid.uuid4().hex[:8]}", f"bob{uuid.uuid4().hex[:8]}"
    add_task(make_ctx(owner=alice), "alice's secret")
    assert list_tasks(make_ctx(owner=bob)) == {"tasks": []}
    with pytest.raises(ToolInputError, match="I don't see task 1"):
        delete_task(make_ctx(owner=bob), 1)
    assert add_task(make_ctx(owner=bob), "bob's")["task"]["id"] == 1
    assert list_tasks(make_ctx(owner=alice)) == {"tasks": [task(1, "alice's secret")]}


def test_model_supplied_user_id_is_refused_and_the_owner_stays_in_charge(
    make_ctx: MakeContext, store: MessageStore, owner: str
) -> None:
    victim = f"victim{uuid.uuid4().hex[:8]}"
    add_task(make_ctx(owner=victim), "victim's task")
    registry = default_registry()
    sneaky = ToolCall(id="c1", name="list_tasks", arguments={"user_id": victim})
    outcome = execute_tool(registry, sneaky, make_ctx())
    assert (outcome.ok, outcome.error_kind) == (False, "forbidden")
    assert "victim's task" not in repr(outcome)
    plain = execute_tool(registry, ToolCall(id="c2", name="list_tasks"), make_ctx())
    assert plain.result == {"tasks": []}
    add = ToolCall(id="c3", name="add_task", arguments={"title": "mine", "owner": victim})
    assert execute_tool(registry, add, make_ctx()).error_kind == "forbidden"
    assert store.stream_version(tasks_stream(owner)) is None
    assert read_task_list(store, victim).select()[0].title == "victim's task"


def test_redelivered_call_writes_once_and_returns_the_same_outcome(
    make_ctx: MakeContext, store: MessageStore, owner: str
) -> None:
    step_id, call_id = str(uuid.uuid4()), "call_add"
    first = add_task(make_ctx(step_id=step_id, tool_call_id=call_id), "milk")
    add_task(make_ctx(), "bread")
    again = add_task(make_ctx(step_id=step_id, tool_call_id=call_id), "milk")
    assert again == first == {"task": task(1, "milk")}
    assert [m.type for m in store.read_stream(tasks_stream(owner))] == ["TaskAdded", "TaskAdded"]


def test_redelivered_delete_replays_the_deleted_task(
    make_ctx: MakeContext, store: MessageStore, owner: str
) -> None:
    add_task(make_ctx(), "milk")
    ctx = make_ctx()
    first = delete_task(ctx, 1)
    assert delete_task(ctx, 1) == first == {"deleted": task(1, "milk")}
    assert store.stream_version(tasks_stream(owner)) == 1


def test_concurrent_duplicate_deliveries_write_one_event(
    make_ctx: MakeContext, store: MessageStore, owner: str
) -> None:
    ctx = make_ctx()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: add_task(ctx, "milk"), range(4)))
    assert all(result == {"task": task(1, "milk")} for result in results)
    assert len(store.read_stream(tasks_stream(owner))) == 1


def test_concurrent_distinct_calls_get_distinct_ids(
    make_ctx: MakeContext, store: MessageStore, owner: str
) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda n: add_task(make_ctx(), f"t{n}"), range(4)))
    assert sorted(r["task"]["id"] for r in results) == [1, 2, 3, 4]
    events = from_messages(store.read_stream(tasks_stream(owner)))
    assert len(events) == 4


def test_owner_ids_that_cannot_be_stream_ids_are_hashed(
    make_ctx: MakeContext, store: MessageStore
) -> None:
    odd = f"Ada Lovelace+{uuid.uuid4().hex[:6]}@example.org"
    assert owner_stream_id("ada@example.org") == "ada@example.org"
    hashed = owner_stream_id(odd)
    assert hashed.startswith("~")
    assert hashed == owner_stream_id(odd)
    assert owner_stream_id(hashed) != hashed
    add_task(make_ctx(owner=odd), "works")
    assert [t.title for t in read_task_list(store, odd).select()] == ["works"]


def test_an_empty_owner_is_refused(make_ctx: MakeContext) -> None:
    with pytest.raises(ToolForbiddenError):
        list_tasks(make_ctx(owner=""))


def test_task_tools_need_a_store(make_ctx: MakeContext) -> None:
    with pytest.raises(ToolError, match="not available"):
        list_tasks(make_ctx(store=None))
