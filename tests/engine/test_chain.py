"""Several steps in one invocation: same protocol, one commit per step, nothing lost."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, text

from messagedb_agent.engine.step import Engine
from messagedb_agent.llm.types import UserTurn
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import StepKind
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message
from messagedb_agent.threads.reading import read_thread


def write_transactions(store: MessageStore, stream: str, after: int) -> int:
    """How many transactions wrote the stream's messages after `after` (distinct xmin)."""
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM message_store.messages"
            " WHERE stream_name = %s AND position > %s",
            (stream, after),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_whole_turn_runs_in_one_call_with_one_commit_per_step(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    model.script = [calls(("add", {"a": 1, "b": 2})), calls(("add", {"a": 3, "b": 4})), text("10")]
    thread = new_thread(store)
    result = engine.advance(thread.notification, max_steps=50)
    used = write_transactions(store, thread.stream_name, thread.position)
    assert result.outcome is StepKind.EXECUTED
    assert result.steps == 5  # three model calls, two tool steps
    assert result.turn_completed
    assert result.reply == "10"
    assert result.follow_ups == ()  # the turn is over: nothing left to announce
    # the first claim, then each step's results together with the next step's claim
    assert used == result.steps + 1
    types = [e.type for e in read_thread(store, thread.stream_name)]
    assert types.count("LLMCallRequested") == 3
    assert types.count("ToolExecutionCompleted") == 2
    assert types[-1] == "LLMResponseReceived"


def test_chained_and_single_steps_write_the_same_events(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    script = [calls(("add", {"a": 1, "b": 2}), ("whoami", {})), text("done")]
    streams = []
    for chain in (1, 50):
        model.script = list(script)
        engine = Engine(store, model, tools, clock=clock, worker="w")
        thread = new_thread(store)
        current = thread.notification
        while True:
            result = engine.advance(current, max_steps=chain)
            if not result.follow_ups:
                break
            current = result.follow_ups[-1]
        streams.append([(e.type, e.position) for e in read_thread(store, thread.stream_name)])
    assert streams[0] == streams[1]


def test_a_message_sent_mid_chain_is_read_and_answered_in_the_same_chain(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    thread = new_thread(store, "first")
    model.gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(engine.advance, thread.notification, max_steps=50)
        assert model.entered.wait(5)
        add_message(store, thread.thread_id, owner="alice", message="second", now=datetime.now(UTC))
        model.gate.set()
        result = running.result(10)
    assert result.steps == 2
    assert model.seen[1][-1] == UserTurn("second")
    assert result.reply == "you said: second"
    types = [e.type for e in read_thread(store, thread.stream_name)]
    assert types.count("LLMResponseReceived") == 2


class Crash(BaseException):
    pass


def test_a_chain_that_dies_holding_the_next_claim_is_taken_over_after_the_lease(
    store: MessageStore, engine: Engine, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    def boom(args: dict[str, int], ctx: object) -> None:
        raise Crash

    tools.functions["boom"] = boom
    model.script = [calls(("boom", {})), text("after")]
    thread = new_thread(store)
    with pytest.raises(Crash):
        engine.advance(thread.notification, max_steps=50)
    events = read_thread(store, thread.stream_name)
    assert events[-1].type == "ToolExecutionRequested"  # claimed together with the response
    head = Notification(stream_name=thread.stream_name, position=events[-1].position)
    assert engine.advance(head, max_steps=50).outcome is StepKind.IN_FLIGHT
    tools.functions["boom"] = lambda args, ctx: {"ok": True}
    clock.advance(engine.config.tool_lease.total_seconds() + 1)
    result = engine.advance(head, max_steps=50)
    assert result.reply == "after"
    types = [e.type for e in read_thread(store, thread.stream_name)]
    assert types.count("ToolExecutionCompleted") == 1


def test_a_chain_that_used_up_its_time_hands_the_rest_to_a_new_delivery(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    model.script = [calls(("add", {"a": 1, "b": 2})), text("3")]
    thread = new_thread(store)
    result = engine.advance(thread.notification, max_steps=50, budget_seconds=0)
    assert result.steps == 1  # the first step always runs; then the budget is spent
    assert not result.turn_completed
    [follow_up] = result.follow_ups  # the rest is announced, so nothing is left behind
    head = store.stream_version(thread.stream_name)
    assert follow_up == Notification(stream_name=thread.stream_name, position=head)
    rest = engine.advance(follow_up, max_steps=50)
    assert rest.reply == "3"
