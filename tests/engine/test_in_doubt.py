"""Effects are never run twice: a call whose worker went silent after its effect (the lease ran
out, nothing recorded) is reported in doubt when its tool is not idempotent, never run again;
an idempotent tool is run again, with the same idempotency key. A call in doubt of a tool that
requires approval is its owner's to rerun: asked again, granted it runs once more, refused it
stays in doubt."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, text

from messagedb_agent.api.transcript import thread_detail
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import (
    ToolApprovalDenied,
    ToolApprovalRequested,
    ToolExecutionCompleted,
    ToolExecutionInDoubt,
)
from messagedb_agent.llm.types import ToolResult
from messagedb_agent.notification import Notification
from messagedb_agent.projections.approvals import project_approvals
from messagedb_agent.projections.cost import PriceTable
from messagedb_agent.projections.llm_context import IN_DOUBT
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.approvals import decide_approval
from messagedb_agent.threads.errors import ApprovalDecided
from messagedb_agent.threads.reading import read_thread
from messagedb_agent.tools.context import ToolContext


def engine_for(
    store: MessageStore,
    model: ScriptedModel,
    tools: EchoTools,
    clock: Clock,
    worker: str,
    idempotent: tuple[str, ...],
    approval: tuple[str, ...] = (),
) -> Engine:
    config = EngineConfig(
        model="scripted", idempotent_tools=idempotent, tools_requiring_approval=approval
    )
    return Engine(store, model, tools, config, clock=clock, worker=worker)


def silent_worker(
    store: MessageStore,
    model: ScriptedModel,
    tools: EchoTools,
    clock: Clock,
    idempotent: tuple[str, ...],
    approval: tuple[str, ...] = (),
) -> tuple[Any, list[str], threading.Event, threading.Thread]:
    """A thread whose `send` call took effect on a worker that then hung past its lease (after
    its owner approved it, if `send` requires approval)."""
    effects: list[str] = []
    hung, release = threading.Event(), threading.Event()

    def send(args: dict[str, Any], ctx: ToolContext) -> dict[str, str]:
        effects.append(ctx.idempotency_key)
        if len(effects) == 1:
            hung.set()
            release.wait(10)  # the first worker stops here, its effect done, nothing recorded
        return {"sent": args["to"]}

    tools.functions["send"] = send
    model.script = [calls(("send", {"to": "bob"})), text("done")]
    thread = new_thread(store, "send it to bob")
    first = engine_for(store, model, tools, clock, "worker-a", idempotent, approval)
    if approval:
        run_until_idle(first, thread.notification, max_wait=0)
        decide_approval(store, thread.thread_id, "c0", owner="alice", approve=True)
    stuck = threading.Thread(target=run_until_idle, args=(first, thread.notification))
    stuck.start()
    assert hung.wait(5)
    clock.advance(61)  # past the tool lease: the claimant is silent
    return thread, effects, release, stuck


def test_a_non_idempotent_call_whose_worker_went_silent_is_reported_in_doubt_not_run_again(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread, effects, release, stuck = silent_worker(store, model, tools, clock, ())
    second = engine_for(store, model, tools, clock, "worker-b", ())
    head = store.stream_version(thread.stream_name) or 0
    run_until_idle(second, Notification(stream_name=thread.stream_name, position=head), max_wait=0)
    release.set()
    stuck.join(10)
    events = read_thread(store, thread.stream_name)
    assert len(effects) == 1  # never run twice
    doubts = [e.event for e in events if isinstance(e.event, ToolExecutionInDoubt)]
    assert [(d.tool_name, d.attempt) for d in doubts] == [("send", 1)]
    assert not any(isinstance(e.event, ToolExecutionCompleted) for e in events)  # one outcome
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert results == [ToolResult("c0", "send", {"in_doubt": IN_DOUBT}, True)]


def test_an_idempotent_call_whose_worker_went_silent_runs_again_with_the_same_key(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread, effects, release, stuck = silent_worker(store, model, tools, clock, ("send",))
    second = engine_for(store, model, tools, clock, "worker-b", ("send",))
    head = store.stream_version(thread.stream_name) or 0
    run_until_idle(second, Notification(stream_name=thread.stream_name, position=head), max_wait=0)
    release.set()
    stuck.join(10)
    events = read_thread(store, thread.stream_name)
    assert len(effects) == 2
    assert effects[0] == effects[1]  # the tool hands the same key to what it changes
    assert [type(e.event) for e in events].count(ToolExecutionCompleted) == 1
    assert not any(isinstance(e.event, ToolExecutionInDoubt) for e in events)


@pytest.fixture
def doubted_with_approval(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> Iterator[tuple[Any, list[str], Engine, Callable[[], None]]]:
    """`send` requires approval, was approved, took effect, and its worker went silent: the
    next worker finds it in doubt and asks its owner again. The hung worker stays hung until
    the test lets it go (`wake`), or the test ends."""
    thread, effects, release, stuck = silent_worker(store, model, tools, clock, (), ("send",))
    second = engine_for(store, model, tools, clock, "worker-b", (), ("send",))
    drive(second, store, thread.stream_name)

    def wake() -> None:
        release.set()
        stuck.join(10)

    yield thread, effects, second, wake
    wake()


def drive(engine: Engine, store: MessageStore, stream: str) -> None:
    head = store.stream_version(stream) or 0
    run_until_idle(engine, Notification(stream_name=stream, position=head), max_wait=0)


Doubted = tuple[Any, list[str], Engine, Callable[[], None]]


def test_a_call_in_doubt_of_a_tool_that_requires_approval_waits_for_its_owner_to_rerun_it(
    store: MessageStore, model: ScriptedModel, doubted_with_approval: Doubted
) -> None:
    thread, effects, second, wake = doubted_with_approval
    events = read_thread(store, thread.stream_name)
    doubt = [e.event for e in events if isinstance(e.event, ToolExecutionInDoubt)]
    assert [(d.attempt, d.retry_on_approval) for d in doubt] == [(1, True)]
    asked = [e.event for e in events if isinstance(e.event, ToolApprovalRequested)]
    assert [a.retry_of for a in asked] == [None, 1]  # approved once, asked again
    pending = project_approvals(events).pending
    assert [(a.tool_call_id, a.retry_of) for a in pending] == [("c0", 1)]
    detail = thread_detail(thread.thread_id, events, PriceTable({}))
    assert [(a.tool_call_id, a.retry_of) for a in detail.pending_approvals] == [("c0", 1)]
    assert [(c.id, c.status) for c in detail.tool_calls] == [("c0", "awaiting_approval")]
    assert len(effects) == 1
    assert len(model.seen) == 1

    decided = decide_approval(store, thread.thread_id, "c0", owner="alice", approve=True)
    assert decided.created
    drive(second, store, thread.stream_name)
    drive(second, store, thread.stream_name)  # a duplicate delivery finds nothing to do

    events = read_thread(store, thread.stream_name)
    assert len(effects) == 2
    assert effects[0] == effects[1]
    assert [type(e.event) for e in events].count(ToolExecutionCompleted) == 1
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert results == [ToolResult("c0", "send", {"sent": "bob"})]  # one result per call
    with pytest.raises(ApprovalDecided, match="already approved"):
        decide_approval(store, thread.thread_id, "c0", owner="alice", approve=False)
    wake()  # the silent worker's late outcome finds the call's outcome recorded
    events = read_thread(store, thread.stream_name)
    assert [type(e.event) for e in events].count(ToolExecutionCompleted) == 1


def test_a_late_outcome_of_the_call_in_doubt_settles_it_and_withdraws_the_question(
    store: MessageStore, model: ScriptedModel, doubted_with_approval: Doubted
) -> None:
    thread, effects, second, wake = doubted_with_approval
    wake()  # the silent worker was only slow: its outcome is recorded after all
    drive(second, store, thread.stream_name)

    events = read_thread(store, thread.stream_name)
    assert len(effects) == 1
    assert project_approvals(events).pending == []
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert results == [ToolResult("c0", "send", {"sent": "bob"})]


def test_a_rerun_its_owner_refuses_leaves_the_call_in_doubt_for_the_model(
    store: MessageStore, model: ScriptedModel, doubted_with_approval: Doubted
) -> None:
    thread, effects, second, _wake = doubted_with_approval
    decide_approval(
        store, thread.thread_id, "c0", owner="alice", approve=False, reason="it arrived"
    )
    drive(second, store, thread.stream_name)

    events = read_thread(store, thread.stream_name)
    assert len(effects) == 1  # never run twice
    denied = [e.event for e in events if isinstance(e.event, ToolApprovalDenied)]
    assert [(d.retry_of, d.reason) for d in denied] == [(1, "it arrived")]
    detail = thread_detail(thread.thread_id, events, PriceTable({}))
    assert [(c.id, c.status) for c in detail.tool_calls] == [("c0", "in_doubt")]
    assert detail.pending_approvals == []
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert results == [
        ToolResult(
            "c0",
            "send",
            {"in_doubt": IN_DOUBT, "not_run_again": "the user declined: it arrived"},
            True,
        )
    ]


def test_a_rerun_nobody_approves_in_time_expires_and_the_call_stays_in_doubt(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread, effects, release, stuck = silent_worker(store, model, tools, clock, (), ("send",))
    config = EngineConfig(
        model="scripted",
        idempotent_tools=(),
        tools_requiring_approval=("send",),
        approval_ttl=timedelta(minutes=5),
    )
    second = Engine(store, model, tools, config, clock=clock, worker="worker-b")
    drive(second, store, thread.stream_name)
    clock.advance(301)
    drive(second, store, thread.stream_name)
    release.set()
    stuck.join(10)

    events = read_thread(store, thread.stream_name)
    denied = [e.event for e in events if isinstance(e.event, ToolApprovalDenied)]
    assert [(d.retry_of, d.expired) for d in denied] == [(1, True)]
    assert len(effects) == 1
    results = [m for m in model.seen[-1] if isinstance(m, ToolResult)]
    assert [r.content["in_doubt"] for r in results] == [IN_DOUBT]


def test_the_runtime_reruns_only_tools_declared_idempotent(store: MessageStore) -> None:
    from messagedb_agent.runtime import build_engine
    from messagedb_agent.settings import Settings
    from messagedb_agent.tools import tool

    @tool
    def charge_card(amount: int) -> dict[str, int]:
        """Charge the card."""
        return {"charged": amount}

    @tool(idempotent=True)
    def set_flag(on: bool) -> dict[str, bool]:
        """Set the flag."""
        return {"on": on}

    engine = build_engine(Settings(), store, tools=[charge_card, set_flag])
    config = engine.config
    assert not config.idempotent("charge_card")
    assert config.idempotent("set_flag")
    assert all(config.idempotent(name) for name in ("add_task", "delete_task", "calculate"))
