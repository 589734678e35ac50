"""A message sent while a turn runs, under each policy, with five of them racing: `enqueue`
answers them after the turn, `reject` refuses them and writes nothing, `interrupt` cancels the
turn and answers with it in context, `rollback` answers without it. Each is decided at the head
its request read and written at exactly that head, against the real Message DB."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, text

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import TurnCancelled, UserMessageAdded
from messagedb_agent.llm.types import AssistantTurn, UserTurn
from messagedb_agent.notification import Notification
from messagedb_agent.projections.llm_context import CANCELLED_NOTE
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import Appended, add_message, start_thread
from messagedb_agent.threads.errors import TurnRunning
from messagedb_agent.threads.reading import read_thread

RACERS = 5


def blocked_turn(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock, multitask: str
) -> tuple[Appended, Engine, threading.Thread]:
    """A thread whose first turn is in a model call that waits for `model.gate`."""
    model.gate = threading.Event()
    model.script = [calls(("add", {"a": 1, "b": 2}))]
    thread = start_thread(
        store, owner="alice", message="first", now=datetime.now(UTC), multitask=multitask
    )
    engine = Engine(store, model, tools, EngineConfig(model="scripted"), clock=clock, worker="a")
    running = threading.Thread(target=run_until_idle, args=(engine, thread.notification))
    running.start()
    assert model.entered.wait(5)
    return thread, engine, running


def race(thread: Appended, store: MessageStore, **policy: str) -> list[Appended | Exception]:
    def send(n: int) -> Appended | Exception:
        try:
            return add_message(
                store,
                thread.thread_id,
                owner="alice",
                message=f"message {n}",
                now=datetime.now(UTC),
                **policy,
            )
        except TurnRunning as refused:
            return refused

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(send, range(RACERS)))


def said(store: MessageStore, stream: str) -> list[str]:
    return [
        e.event.message for e in read_thread(store, stream) if isinstance(e.event, UserMessageAdded)
    ]


def settle(
    engine: Engine,
    running: threading.Thread,
    model: ScriptedModel,
    gate: threading.Event,
    store: MessageStore,
    stream: str,
) -> None:
    gate.set()
    running.join(10)
    version = store.stream_version(stream) or 0
    run_until_idle(engine, Notification(stream_name=stream, position=version))


@pytest.mark.parametrize("default", [True, False], ids=["thread default", "per request"])
def test_reject_refuses_every_racing_message_and_writes_nothing(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock, default: bool
) -> None:
    thread, engine, running = blocked_turn(
        store, model, tools, clock, "reject" if default else "enqueue"
    )
    before = store.stream_version(thread.stream_name)
    outcomes = race(thread, store) if default else race(thread, store, multitask="reject")
    assert all(isinstance(o, TurnRunning) for o in outcomes)
    assert store.stream_version(thread.stream_name) == before
    assert model.gate is not None
    settle(engine, running, model, model.gate, store, thread.stream_name)
    assert said(store, thread.stream_name) == ["first"]


def test_reject_on_an_idle_thread_lets_exactly_one_of_the_racing_messages_in(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    model.script = [text("hello")]
    thread = start_thread(
        store, owner="alice", message="first", now=datetime.now(UTC), multitask="reject"
    )
    engine = Engine(store, model, tools, EngineConfig(model="scripted"), clock=clock, worker="a")
    run_until_idle(engine, thread.notification)
    outcomes = race(thread, store)
    accepted = [o for o in outcomes if isinstance(o, Appended)]
    assert len(accepted) == 1  # it starts a turn, which every other message then finds running
    assert len(said(store, thread.stream_name)) == 2


def test_enqueue_answers_every_racing_message_after_the_running_turn(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread, engine, running = blocked_turn(store, model, tools, clock, "enqueue")
    outcomes = race(thread, store)
    assert all(isinstance(o, Appended) for o in outcomes)
    assert model.gate is not None
    settle(engine, running, model, model.gate, store, thread.stream_name)
    events = read_thread(store, thread.stream_name)
    assert not any(isinstance(e.event, TurnCancelled) for e in events)
    assert len(said(store, thread.stream_name)) == 1 + RACERS
    last_context = model.seen[-1]
    assert {m.text for m in last_context if isinstance(m, UserTurn)} >= {
        f"message {n}" for n in range(RACERS)
    }


def test_interrupt_cancels_the_running_turn_and_answers_with_it_in_context(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread, engine, running = blocked_turn(store, model, tools, clock, "interrupt")
    outcomes = race(thread, store)
    assert all(isinstance(o, Appended) for o in outcomes)
    events = read_thread(store, thread.stream_name)
    cancels = [e for e in events if isinstance(e.event, TurnCancelled)]
    assert len(cancels) == RACERS  # each message found a turn running: the one before it
    assert model.gate is not None
    settle(engine, running, model, model.gate, store, thread.stream_name)
    assert tools.runs == []  # the first turn's late answer asked for a tool; nobody ran it
    context = model.seen[-1]
    users = [m.text for m in context if isinstance(m, UserTurn)]
    assert users[0] == "first"
    assert users.count(CANCELLED_NOTE) == RACERS
    assert not any(isinstance(m, AssistantTurn) and m.tool_calls for m in context)


def test_rollback_answers_without_the_cancelled_turns_in_context(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread, engine, running = blocked_turn(store, model, tools, clock, "enqueue")
    outcomes = race(thread, store, multitask="rollback")
    assert all(isinstance(o, Appended) for o in outcomes)
    assert model.gate is not None
    settle(engine, running, model, model.gate, store, thread.stream_name)
    context = model.seen[-1]
    users = [m.text for m in context if isinstance(m, UserTurn)]
    assert len(users) == 1  # only the message the last rollback answered
    assert users[0].startswith("message ")
    assert said(store, thread.stream_name)[0] == "first"  # still in the log
