"""Pure tool steps: run before their claim is written, claimed and recorded in one write.

A pure tool has no effect outside the process, so nothing needs its claim to stand in the
store before it runs; the claim and the results go in with the next step's write, at the
same `expected_version`, or not at all. The stream holds the very events a claimed-first step
would have written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, step, text
from tests.engine.test_chain import write_transactions

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import Event, Recorded
from messagedb_agent.llm.types import UserTurn
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import StepKind
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message
from messagedb_agent.threads.reading import read_thread

SCRIPT = [calls(("add", {"a": 1, "b": 2})), calls(("add", {"a": 3, "b": 4})), text("10")]


def pure(tools: EchoTools) -> EchoTools:
    return EchoTools(tools.functions, pure=frozenset({"add"}))


def run_turn(engine: Engine, notification: Notification, chain: int) -> list[int]:
    """Drive the thread until it waits; the steps each delivery ran."""
    ran, current = [], notification
    while True:
        result = engine.advance(current, max_steps=chain)
        ran.append(result.steps)
        if not result.follow_ups:
            return ran
        current = result.follow_ups[-1]


def shapes(events: list[Recorded[Event]]) -> list[tuple[Any, ...]]:
    """What a thread's events say, with its ids (derived from its name) numbered in order."""
    seen: dict[str | None, int] = {None: -1}
    return [
        (
            e.type,
            e.position,
            e.metadata.causation_message_position,
            seen.setdefault(e.metadata.step_id, len(seen)),
            e.metadata.correlation_stream_name == e.stream_name,
        )
        for e in events
    ]


def test_a_pure_tool_step_is_claimed_and_recorded_with_the_next_step(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    model.script = list(SCRIPT)
    engine = Engine(store, model, pure(tools), EngineConfig(model="scripted"), clock=clock)
    thread = new_thread(store)
    result = engine.advance(thread.notification, max_steps=50)
    assert result.steps == 5  # three model calls, two tool steps: each is still a step
    assert result.reply == "10"
    # the first claim; each response with the tool step's claim and results and the next
    # model call's claim; the last response
    assert write_transactions(store, thread.stream_name, thread.position) == 4
    heads = [e.type for e in read_thread(store, thread.stream_name)]
    assert heads.count("ToolExecutionRequested") == heads.count("ToolExecutionCompleted") == 2


def test_pure_and_claimed_first_tool_steps_write_the_same_events(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    for chain in (1, 50):  # one step per delivery, or the whole turn in one
        streams = []
        for offered in (tools, pure(tools)):
            model.script = list(SCRIPT)
            engine = Engine(store, model, offered, clock=clock, worker="w")
            thread = new_thread(store)
            run_turn(engine, thread.notification, chain)
            streams.append(shapes(read_thread(store, thread.stream_name)))
        claimed_first, pure_steps = streams
        assert pure_steps == claimed_first


def test_one_delivery_writes_a_pure_steps_claim_and_results_at_once(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    model.script = [calls(("add", {"a": 1, "b": 2})), text("3")]
    engine = Engine(store, model, pure(tools), clock=clock)
    thread = new_thread(store)
    first = step(engine, thread.notification)
    assert first.kind is StepKind.LLM_CALL
    head = store.stream_version(thread.stream_name)
    assert head is not None
    second = step(engine, first.follow_ups[-1])
    assert second.kind is StepKind.TOOL_EXECUTION
    assert second.steps == 1
    assert write_transactions(store, thread.stream_name, head) == 1
    written = read_thread(store, thread.stream_name, after=head)
    assert [e.type for e in written] == ["ToolExecutionRequested", "ToolExecutionCompleted"]


def test_a_message_sent_before_a_pure_step_is_written_drops_it_and_it_is_decided_again(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread = new_thread(store, "first")
    sent: list[int] = []

    def add(args: dict[str, int], ctx: object) -> dict[str, int]:
        if not sent:  # the user writes while the step's claim is not in the store yet
            now = datetime.now(UTC)
            appended = add_message(
                store, thread.thread_id, owner="alice", message="second", now=now
            )
            sent.append(appended.position)
        return {"sum": args["a"] + args["b"]}

    offered = EchoTools({"add": add}, pure=frozenset({"add"}))
    model.script = [calls(("add", {"a": 1, "b": 2})), text("3")]
    engine = Engine(store, model, offered, clock=clock)
    result = engine.advance(thread.notification, max_steps=50)
    events = read_thread(store, thread.stream_name)
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))
    [message] = sent
    # nothing of the pure step was written before the message: only the response it owed
    after = [e.type for e in events if e.position > message]
    assert after[0] == "LLMResponseReceived"
    assert after.count("ToolExecutionRequested") == after.count("ToolExecutionCompleted") == 1
    assert len(offered.runs) == 2  # run again on the thread as it was: pure, so harmless
    assert UserTurn("second") in model.seen[-1]
    assert result.turn_completed
