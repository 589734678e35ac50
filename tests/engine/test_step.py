from __future__ import annotations

from tests.engine.doubles import EchoTools, ScriptedModel, calls, new_thread, text

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.projections.llm_context import project_llm_context
from messagedb_agent.projections.next_step import StepKind
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread


def test_a_plain_message_gets_one_reply(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    model.script = [text("hi there")]
    thread = new_thread(store)
    results = run_until_idle(engine, thread.notification)
    assert [r.outcome for r in results] == [StepKind.EXECUTED, StepKind.WAITING]
    assert results[0].turn_completed
    assert results[0].reply == "hi there"
    types = [e.type for e in read_thread(store, thread.stream_name)]
    assert types == [
        "SessionStarted",
        "UserMessageAdded",
        "LLMCallRequested",
        "LLMResponseReceived",
    ]


def test_tool_calls_chain_and_results_reach_the_model(
    store: MessageStore, engine: Engine, model: ScriptedModel, tools: EchoTools
) -> None:
    model.script = [calls(("add", {"a": 2, "b": 3})), calls(("whoami", {})), text("done")]
    thread = new_thread(store)
    run_until_idle(engine, thread.notification)
    assert model.calls == 3
    assert [name for name, _, _ in tools.runs] == ["add", "whoami"]
    context = project_llm_context(read_thread(store, thread.stream_name))
    assert [type(m).__name__ for m in context.messages] == [
        "UserTurn",
        "AssistantTurn",
        "ToolResult",
        "AssistantTurn",
        "ToolResult",
        "AssistantTurn",
    ]
    assert context.messages[2].content == {"sum": 5}  # type: ignore[union-attr]
    assert context.messages[4].content == {"user": "alice"}  # type: ignore[union-attr]
