"""Cancelling a running turn: no step of it starts after the cancellation, on any worker; what
was already running finishes and is recorded, but nothing acts on it; its approvals are
withdrawn; the next message is answered with the cancelled turn marked in the context."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, text

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import (
    LLMResponseReceived,
    ToolExecutionCompleted,
    ToolExecutionRequested,
    TurnCancelled,
)
from messagedb_agent.llm.types import ToolResult, UserTurn
from messagedb_agent.notification import Notification
from messagedb_agent.projections.approvals import project_approvals
from messagedb_agent.projections.llm_context import CANCELLED_CALL, CANCELLED_NOTE
from messagedb_agent.projections.next_step import StepKind, project_next_step
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.approvals import decide_approval
from messagedb_agent.threads.commands import add_message, cancel_turn
from messagedb_agent.threads.errors import ApprovalDecided
from messagedb_agent.threads.reading import read_thread


def engine_for(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock, worker: str
) -> Engine:
    config = EngineConfig(model="scripted", tools_requiring_approval=("delete_task",))
    return Engine(store, model, tools, config, clock=clock, worker=worker)


def head(store: MessageStore, stream: str) -> Notification:
    return Notification(stream_name=stream, position=store.stream_version(stream) or 0)


def test_a_cancel_issued_while_a_model_call_is_in_flight_stops_the_turn_on_every_worker(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    model.gate = threading.Event()
    model.script = [calls(("add", {"a": 1, "b": 2})), text("never asked for")]
    thread = new_thread(store, "add one and two")
    first = engine_for(store, model, tools, clock, "worker-a")
    running = threading.Thread(target=run_until_idle, args=(first, thread.notification))
    running.start()
    assert model.entered.wait(5)
    cancelled = cancel_turn(store, thread.thread_id, owner="alice", now=clock.now)
    assert cancelled.appended is not None
    other = engine_for(store, model, tools, clock, "worker-b")  # a second instance
    run_until_idle(other, head(store, thread.stream_name), max_wait=0)
    model.gate.set()
    running.join(10)
    events = read_thread(store, thread.stream_name)
    types = [e.type for e in events]
    assert types.index(TurnCancelled.type) < types.index(LLMResponseReceived.type)  # recorded
    assert ToolExecutionRequested.type not in types  # ...and acted on by nobody
    assert tools.runs == []
    assert model.calls == 1
    later = project_next_step(events, clock.now + timedelta(hours=1))
    assert later.kind is StepKind.WAIT_FOR_USER


def test_the_next_message_is_answered_with_the_cancelled_turn_marked(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    model.gate = threading.Event()
    model.script = [calls(("add", {"a": 1, "b": 2})), text("three")]
    thread = new_thread(store, "add one and two")
    engine = engine_for(store, model, tools, clock, "worker-a")
    running = threading.Thread(target=run_until_idle, args=(engine, thread.notification))
    running.start()
    assert model.entered.wait(5)
    cancel_turn(store, thread.thread_id, owner="alice", now=clock.now)
    model.gate.set()
    running.join(10)
    asked = add_message(store, thread.thread_id, owner="alice", message="never mind", now=clock.now)
    run_until_idle(engine, asked.notification)
    context = model.seen[-1]
    assert [m for m in context if isinstance(m, UserTurn)] == [
        UserTurn("add one and two"),
        UserTurn(CANCELLED_NOTE),
        UserTurn("never mind"),
    ]
    assert not any(isinstance(m, ToolResult) for m in context)  # the late answer is not there


def test_a_cancel_during_a_tool_step_marks_the_calls_that_never_ran(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    tools.functions["delete_task"] = lambda args, ctx: {"deleted": args["task_id"]}
    model.script = [
        calls(("add", {"a": 1, "b": 2}), ("delete_task", {"task_id": 2})),
        text("ok, stopped"),
    ]
    thread = new_thread(store, "add and delete")
    engine = engine_for(store, model, tools, clock, "worker-a")
    run_until_idle(engine, thread.notification, max_wait=0)
    assert [
        a.tool_call_id for a in project_approvals(read_thread(store, thread.stream_name)).pending
    ] == ["c1"]
    cancel_turn(store, thread.thread_id, owner="alice", now=clock.now)
    events = read_thread(store, thread.stream_name)
    assert project_approvals(events).pending == []  # withdrawn
    with pytest.raises(ApprovalDecided, match="withdrawn"):
        decide_approval(store, thread.thread_id, "c1", owner="alice", approve=True)
    run_until_idle(engine, head(store, thread.stream_name), max_wait=0)
    assert [name for name, _, _ in tools.runs] == ["add"]
    asked = add_message(store, thread.thread_id, owner="alice", message="what now?", now=clock.now)
    run_until_idle(engine, asked.notification)
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert [(r.tool_call_id, r.content) for r in results] == [
        ("c0", {"sum": 3}),
        ("c1", {"cancelled": CANCELLED_CALL}),
    ]


def test_cancelling_when_nothing_runs_writes_nothing(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    model.script = [text("hello")]
    thread = new_thread(store, "hi")
    run_until_idle(engine_for(store, model, tools, clock, "a"), thread.notification)
    before = store.stream_version(thread.stream_name)
    cancelled = cancel_turn(store, thread.thread_id, owner="alice", now=clock.now)
    assert cancelled.appended is None
    assert store.stream_version(thread.stream_name) == before


def test_a_tool_already_running_when_the_turn_is_cancelled_is_recorded_and_not_acted_on(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(args: dict[str, int], ctx: object) -> dict[str, int]:
        started.set()
        release.wait(10)
        return {"slept": 1}

    tools.functions["slow"] = slow
    model.script = [calls(("slow", {})), text("never asked for")]
    thread = new_thread(store, "do the slow thing")
    engine = engine_for(store, model, tools, clock, "a")
    running = threading.Thread(target=run_until_idle, args=(engine, thread.notification))
    running.start()
    assert started.wait(5)
    cancel_turn(store, thread.thread_id, owner="alice", now=clock.now)
    release.set()
    running.join(10)
    events = read_thread(store, thread.stream_name)
    assert [e.type for e in events][-2:] == [TurnCancelled.type, ToolExecutionCompleted.type]
    assert model.calls == 1  # nobody asked the model about the late result
    assert project_next_step(events, clock.now).kind is StepKind.WAIT_FOR_USER
