"""Tool approval: a call of a tool that requires it waits for its owner, runs exactly once when
approved, and is reported to the model as declined when rejected or left to expire."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, text

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import (
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolExecutionCompleted,
    ToolExecutionRequested,
)
from messagedb_agent.llm.types import ToolResult
from messagedb_agent.notification import Notification
from messagedb_agent.projections.approvals import project_approvals
from messagedb_agent.projections.next_step import StepKind, project_next_step
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.approvals import decide_approval
from messagedb_agent.threads.errors import ApprovalDecided, ApprovalNotFound, MessageRejected
from messagedb_agent.threads.reading import read_thread


def approving_engine(
    store: MessageStore,
    model: ScriptedModel,
    tools: EchoTools,
    clock: Clock,
    ttl: timedelta | None = None,
) -> Engine:
    config = EngineConfig(
        model="scripted", tools_requiring_approval=("delete_*",), approval_ttl=ttl
    )
    return Engine(store, model, tools, config, clock=clock, worker="test")


@pytest.fixture
def deleting(tools: EchoTools) -> EchoTools:
    tools.functions["delete_task"] = lambda args, ctx: {"deleted": args["task_id"]}
    return tools


def types(store: MessageStore, stream: str) -> list[str]:
    return [e.type for e in read_thread(store, stream)]


def drive(engine: Engine, stream: str, store: MessageStore) -> None:
    version = store.stream_version(stream) or 0
    run_until_idle(engine, Notification(stream_name=stream, position=version), max_wait=0)


def test_a_call_that_requires_approval_waits_and_the_others_run(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("add", {"a": 1, "b": 2}), ("delete_task", {"task_id": 2}))]
    engine = approving_engine(store, model, deleting, clock)
    thread = new_thread(store, "add and delete")
    drive(engine, thread.stream_name, store)
    events = read_thread(store, thread.stream_name)
    assert [name for name, _, _ in deleting.runs] == ["add"]
    asked = [e.event for e in events if isinstance(e.event, ToolApprovalRequested)]
    assert [(a.tool_name, a.tool_call_id, a.decider) for a in asked] == [
        ("delete_task", "c1", "alice")
    ]
    assert not any(
        isinstance(e.event, ToolExecutionRequested) and e.event.tool_name == "delete_task"
        for e in events
    )
    decision = project_next_step(events, clock.now + timedelta(days=30))
    assert decision.kind is StepKind.AWAITING_APPROVAL
    assert model.calls == 1  # the model waits for every call's outcome
    assert [a.tool_call_id for a in project_approvals(events).pending] == ["c1"]


def test_an_approved_call_runs_once_and_the_model_reads_its_result(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("delete_task", {"task_id": 2})), text("deleted it")]
    engine = approving_engine(store, model, deleting, clock)
    thread = new_thread(store, "delete task 2")
    drive(engine, thread.stream_name, store)
    decided = decide_approval(store, thread.thread_id, "c0", owner="alice", approve=True)
    assert decided.created
    drive(engine, thread.stream_name, store)
    drive(engine, thread.stream_name, store)  # a duplicate delivery finds nothing to do
    assert [name for name, _, _ in deleting.runs] == ["delete_task"]
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert [(r.name, r.content) for r in results] == [("delete_task", {"deleted": 2})]
    assert types(store, thread.stream_name)[-1] == "LLMResponseReceived"


def test_concurrent_duplicate_approvals_write_one_decision_and_run_the_call_once(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("delete_task", {"task_id": 2})), text("done")]
    engine = approving_engine(store, model, deleting, clock)
    thread = new_thread(store, "delete task 2")
    drive(engine, thread.stream_name, store)
    created: list[bool] = []
    start = threading.Barrier(3)

    def approve() -> None:
        start.wait()
        decided = decide_approval(store, thread.thread_id, "c0", owner="alice", approve=True)
        created.append(decided.created)

    workers = [threading.Thread(target=approve) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(created) == [False, False, True]
    engines = [approving_engine(store, model, deleting, clock) for _ in range(3)]
    head = store.stream_version(thread.stream_name) or 0
    runs = [
        threading.Thread(
            target=run_until_idle,
            args=(e, Notification(stream_name=thread.stream_name, position=head)),
            kwargs={"max_wait": 0},
        )
        for e in engines
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    events = read_thread(store, thread.stream_name)
    assert [type(e.event) for e in events].count(ToolApprovalGranted) == 1
    assert [type(e.event) for e in events].count(ToolExecutionCompleted) == 1
    assert [name for name, _, _ in deleting.runs] == ["delete_task"]


def test_a_rejected_call_never_runs_and_the_model_is_told_why(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("delete_task", {"task_id": 2})), text("kept it")]
    engine = approving_engine(store, model, deleting, clock)
    thread = new_thread(store, "delete task 2")
    drive(engine, thread.stream_name, store)
    decide_approval(
        store, thread.thread_id, "c0", owner="alice", approve=False, reason="I still need it"
    )
    drive(engine, thread.stream_name, store)
    assert deleting.runs == []
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert len(results) == 1
    assert results[0].is_error
    assert results[0].content == {"declined": "the user declined: I still need it"}
    assert types(store, thread.stream_name)[-1] == "LLMResponseReceived"


def test_a_second_different_decision_is_refused_and_the_same_one_is_answered_again(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("delete_task", {"task_id": 2}))]
    engine = approving_engine(store, model, deleting, clock)
    thread = new_thread(store, "delete task 2")
    drive(engine, thread.stream_name, store)
    first = decide_approval(store, thread.thread_id, "c0", owner="alice", approve=False)
    again = decide_approval(store, thread.thread_id, "c0", owner="alice", approve=False)
    assert (first.created, again.created) == (True, False)
    assert again.position == first.position
    with pytest.raises(ApprovalDecided, match="already declined"):
        decide_approval(store, thread.thread_id, "c0", owner="alice", approve=True)
    with pytest.raises(ApprovalNotFound):
        decide_approval(store, thread.thread_id, "c9", owner="alice", approve=True)


def test_only_the_owner_decides(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    from messagedb_agent.threads.errors import ThreadNotFound

    model.script = [calls(("delete_task", {"task_id": 2}))]
    engine = approving_engine(store, model, deleting, clock)
    thread = new_thread(store, "delete task 2")
    drive(engine, thread.stream_name, store)
    with pytest.raises(ThreadNotFound):
        decide_approval(store, thread.thread_id, "c0", owner="mallory", approve=True)
    assert not any(
        isinstance(e.event, ToolApprovalGranted) for e in read_thread(store, thread.stream_name)
    )


def test_an_approval_nobody_gives_in_time_is_denied_as_expired(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("delete_task", {"task_id": 2})), text("it expired")]
    engine = approving_engine(store, model, deleting, clock, ttl=timedelta(minutes=10))
    thread = new_thread(store, "delete task 2")
    drive(engine, thread.stream_name, store)
    events = read_thread(store, thread.stream_name)
    waiting = project_next_step(events, clock.now + timedelta(minutes=5))
    assert waiting.kind is StepKind.AWAITING_APPROVAL
    assert waiting.not_before == clock.now + timedelta(minutes=10)
    clock.advance(601)
    drive(engine, thread.stream_name, store)
    events = read_thread(store, thread.stream_name)
    denied = [e.event for e in events if isinstance(e.event, ToolApprovalDenied)]
    assert [(d.reason, d.decided_by) for d in denied] == [("expired", "expiry")]
    assert deleting.runs == []
    with pytest.raises(ApprovalDecided, match="expired"):
        decide_approval(store, thread.thread_id, "c0", owner="alice", approve=True)
    assert model.seen[-1][-1] == ToolResult(
        "c0",
        "delete_task",
        {"declined": "nobody approved this call in time, so it was not run"},
        True,
    )


def test_an_approval_past_its_expiry_is_refused_before_the_step_records_it(
    store: MessageStore, model: ScriptedModel, deleting: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("delete_task", {"task_id": 2}))]
    engine = approving_engine(store, model, deleting, clock, ttl=timedelta(minutes=10))
    thread = new_thread(store, "delete task 2")
    drive(engine, thread.stream_name, store)
    late = clock.now + timedelta(minutes=11)
    with pytest.raises(ApprovalDecided, match="expired"):
        decide_approval(store, thread.thread_id, "c0", owner="alice", approve=True, now=late)
    with pytest.raises(MessageRejected):
        decide_approval(
            store, thread.thread_id, "c0", owner="alice", approve=False, reason="x" * 501
        )
    assert not any(
        isinstance(e.event, ToolApprovalGranted | ToolApprovalDenied)
        for e in read_thread(store, thread.stream_name)
    )
    assert deleting.runs == []


def test_a_tool_declared_with_approval_waits_without_any_setting(
    store: MessageStore, model: ScriptedModel, clock: Clock
) -> None:
    from messagedb_agent.runtime import build_engine
    from messagedb_agent.settings import Settings
    from messagedb_agent.tools import tool

    ran: list[Any] = []

    @tool(approval=True)
    def wire_money(amount: int) -> dict[str, int]:
        """Send money."""
        ran.append(amount)
        return {"sent": amount}

    settings = Settings(tools_requiring_approval="")  # type: ignore[call-arg]
    engine = build_engine(settings, store, llm=model, tools=[wire_money])
    engine.clock = clock
    model.script = [calls(("wire_money", {"amount": 5}))]
    thread = new_thread(store, "send 5")
    drive(engine, thread.stream_name, store)
    assert ran == []
    assert [
        a.tool_name for a in project_approvals(read_thread(store, thread.stream_name)).pending
    ] == ["wire_money"]
