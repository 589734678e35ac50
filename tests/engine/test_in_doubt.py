"""Effects are never run twice: a call whose worker went silent after its effect (the lease ran
out, nothing recorded) is reported in doubt when its tool is not idempotent, never run again;
an idempotent tool is run again, with the same idempotency key."""

from __future__ import annotations

import threading
from typing import Any

from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, text

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import ToolExecutionCompleted, ToolExecutionInDoubt
from messagedb_agent.llm.types import ToolResult
from messagedb_agent.notification import Notification
from messagedb_agent.projections.llm_context import IN_DOUBT
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread
from messagedb_agent.tools.context import ToolContext


def engine_for(
    store: MessageStore,
    model: ScriptedModel,
    tools: EchoTools,
    clock: Clock,
    worker: str,
    idempotent: tuple[str, ...],
) -> Engine:
    config = EngineConfig(model="scripted", idempotent_tools=idempotent)
    return Engine(store, model, tools, config, clock=clock, worker=worker)


def silent_worker(
    store: MessageStore,
    model: ScriptedModel,
    tools: EchoTools,
    clock: Clock,
    idempotent: tuple[str, ...],
) -> tuple[Any, list[str], threading.Event, threading.Thread]:
    """A thread whose `send` call took effect on a worker that then hung past its lease."""
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
    first = engine_for(store, model, tools, clock, "worker-a", idempotent)
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
