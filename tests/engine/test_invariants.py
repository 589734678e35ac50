"""The step protocol's invariants, each against the real Message DB.

Every test here fails when the mechanism it names is removed (the claim's expected_version,
the deterministic result ids, the lease, the stale check, the owner injection).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, step, text
from tests.engine.workers import step_once

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.llm.types import UserTurn
from messagedb_agent.notification import Notification
from messagedb_agent.projections.llm_context import project_llm_context
from messagedb_agent.projections.next_step import StepKind
from messagedb_agent.relay.sweep import sweep
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message
from messagedb_agent.threads.reading import read_thread


def announced(store: MessageStore, now: datetime, stream: str) -> list[Notification]:
    """What the relay announces for `stream` once it has caught up with the whole category."""
    found: list[Notification] = []
    while True:
        category = names.parse(stream).category_name  # the thread's shard
        result = sweep(store, now, category=category, batch_size=100_000)
        found += [n for n in result.notifications if n.stream_name == stream]
        result.record(store)
        if result.read == 0:
            return found


class Crash(BaseException):
    """A process dying mid-step: not an error the engine may catch and record."""


def types_of(store: MessageStore, stream: str) -> list[str]:
    return [e.type for e in read_thread(store, stream)]


def count(store: MessageStore, stream: str, type_name: str) -> int:
    return types_of(store, stream).count(type_name)


# -- 1 and 2: at most one effect, at most one paid call -----------------------------------


def test_three_concurrent_deliveries_in_threads_make_one_claim_and_one_call(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread = new_thread(store)
    model.script = [text("only once")]
    engines = [
        Engine(store, model, tools, EngineConfig(model="m"), clock=clock, worker=f"w{i}")
        for i in range(3)
    ]
    barrier = threading.Barrier(3)

    def deliver(engine: Engine) -> StepKind:
        barrier.wait()
        return step(engine, thread.notification).outcome

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(deliver, engines))
    assert outcomes.count(StepKind.EXECUTED) == 1
    assert model.calls == 1
    assert count(store, thread.stream_name, "LLMCallRequested") == 1
    assert count(store, thread.stream_name, "LLMResponseReceived") == 1


class _ArrivesBeforeTheClaim(MessageStore):
    """A store through which, just before the first claim is written, `meanwhile` runs."""

    def __init__(self, inner: MessageStore, meanwhile: Callable[[], None]) -> None:
        self.__dict__.update(inner.__dict__)
        self._meanwhile: Callable[[], None] | None = meanwhile

    def write_messages(self, *args: Any, **kwargs: Any) -> int:
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        return super().write_messages(*args, **kwargs)


def test_a_worker_whose_read_went_stale_before_its_claim_makes_no_call(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    """Step ids differ when heads differ, so only `expected_version` stops the stale claim."""
    thread = new_thread(store, "first")
    other = Engine(store, model, tools, EngineConfig(model="m"), clock=clock, worker="other")

    def a_message_arrives_and_another_worker_answers() -> None:
        added = add_message(store, thread.thread_id, owner="alice", message="second", now=clock())
        assert step(other, added.notification).outcome is StepKind.EXECUTED

    late = _ArrivesBeforeTheClaim(store, a_message_arrives_and_another_worker_answers)
    slow = Engine(late, model, tools, EngineConfig(model="m"), clock=clock, worker="slow")
    assert step(slow, thread.notification).outcome is StepKind.LOST_CLAIM
    assert model.calls == 1
    assert count(store, thread.stream_name, "LLMCallRequested") == 1


def test_three_concurrent_deliveries_in_processes_call_the_model_once(
    store: MessageStore, database_url: str, tmp_path: Path
) -> None:
    thread = new_thread(store)
    calls_file = tmp_path / "calls.txt"
    calls_file.touch()
    start_at = time.time() + 3.0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        outcomes = pool.starmap(
            step_once,
            [(database_url, thread.stream_name, thread.position, str(calls_file), start_at)] * 3,
        )
    assert Counter(outcomes)["executed"] == 1
    assert calls_file.read_text().count("call") == 1
    assert count(store, thread.stream_name, "LLMCallRequested") == 1
    assert count(store, thread.stream_name, "LLMResponseReceived") == 1


def test_a_redelivered_notification_after_the_step_is_dropped(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    thread = new_thread(store)
    first = step(engine, thread.notification)
    again = step(engine, thread.notification)
    assert first.outcome is StepKind.EXECUTED
    assert again.outcome is StepKind.STALE
    assert model.calls == 1


# -- 3: no thread ever stalls: a crash at every boundary -----------------------------------


def crash_once(target: Any, name: str) -> dict[str, int]:
    """Make `target.name` raise Crash on its first call only."""
    original = getattr(target, name)
    state = {"calls": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state["calls"] += 1
        if state["calls"] == 1:
            raise Crash(name)
        return original(*args, **kwargs)

    setattr(target, name, wrapper)
    return state


def test_crash_after_the_claim_is_recovered_after_the_lease(
    store: MessageStore, engine: Engine, model: ScriptedModel, clock: Clock
) -> None:
    thread = new_thread(store)
    model.script = [text("recovered")]
    crash_once(model, "call")  # dies right after the claim, before the model answers
    with pytest.raises(Crash):
        step(engine, thread.notification)
    assert types_of(store, thread.stream_name)[-1] == "LLMCallRequested"
    head = Notification(stream_name=thread.stream_name, position=thread.position + 1)
    assert step(engine, head).outcome is StepKind.IN_FLIGHT  # the lease still holds
    clock.advance(engine.config.llm_lease.total_seconds() + 1)
    run_until_idle(engine, head)
    events = types_of(store, thread.stream_name)
    assert events.count("LLMResponseReceived") == 1
    assert events.count("LLMCallRequested") == 2  # attempt 1 (lost) and attempt 2
    assert model.calls == 1  # the crashed call never reached the model's answer


def test_crash_after_the_call_before_the_append_is_recovered_once(
    store: MessageStore, engine: Engine, model: ScriptedModel, clock: Clock
) -> None:
    thread = new_thread(store)
    model.script = [text("first answer"), text("second answer")]
    crash_once(engine, "_append")
    with pytest.raises(Crash):
        step(engine, thread.notification)
    clock.advance(engine.config.llm_lease.total_seconds() + 1)
    run_until_idle(
        engine, Notification(stream_name=thread.stream_name, position=thread.position + 1)
    )
    events = read_thread(store, thread.stream_name)
    responses = [e for e in events if e.type == "LLMResponseReceived"]
    assert len(responses) == 1
    assert model.calls == 2  # the abnormal case may pay twice; it never appends twice


def test_crash_between_append_and_publish_is_recovered_by_the_relay(
    store: MessageStore, engine: Engine, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread = new_thread(store)
    model.script = [calls(("add", {"a": 1, "b": 2})), text("three")]
    first = step(engine, thread.notification)
    assert first.follow_ups  # ...and the process dies before publishing them
    assert step(engine, thread.notification).outcome is StepKind.STALE  # redelivery is stale
    relayed = announced(store, clock(), thread.stream_name)
    assert relayed == [first.follow_ups[0]]
    run_until_idle(engine, relayed[0])
    assert types_of(store, thread.stream_name).count("ToolExecutionCompleted") == 1
    assert project_llm_context(read_thread(store, thread.stream_name)).messages[-1].text == "three"  # type: ignore[union-attr]


def test_crash_during_a_tool_reruns_it_once_with_the_same_idempotency_key(
    store: MessageStore, engine: Engine, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    effects: dict[str, int] = {}

    def charge(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
        key = f"{ctx.step_id}/{ctx.tool_call_id}"
        effects[key] = effects.get(key, 0) + 1
        if sum(effects.values()) == 1:
            raise Crash("mid-tool")
        return {"charged": args["amount"]}

    tools.functions["charge"] = charge
    thread = new_thread(store)
    model.script = [calls(("charge", {"amount": 5})), text("charged")]
    step(engine, thread.notification)  # LLM step: asks for the tool
    with pytest.raises(Crash):
        step(engine, Notification(stream_name=thread.stream_name, position=thread.position + 2))
    head = Notification(stream_name=thread.stream_name, position=thread.position + 3)
    assert step(engine, head).outcome is StepKind.IN_FLIGHT
    clock.advance(engine.config.tool_lease.total_seconds() + 1)
    run_until_idle(engine, head)
    events = types_of(store, thread.stream_name)
    assert events.count("ToolExecutionCompleted") == 1
    assert list(effects.values()) == [2]  # both runs carried the same step id and call id
    assert events[-1] == "LLMResponseReceived"


def test_a_crashed_claim_is_announced_by_the_relay_once_its_lease_expires(
    store: MessageStore, engine: Engine, model: ScriptedModel, clock: Clock
) -> None:
    thread = new_thread(store)
    crash_once(model, "call")
    with pytest.raises(Crash):
        step(engine, thread.notification)
    announced(store, clock(), thread.stream_name)  # the relay saw the claim within its lease
    assert announced(store, clock(), thread.stream_name) == []
    clock.advance(engine.config.llm_lease.total_seconds() + 1)
    due = announced(store, clock(), thread.stream_name)
    assert due == [Notification(stream_name=thread.stream_name, position=thread.position + 1)]
    run_until_idle(engine, due[0])
    assert types_of(store, thread.stream_name)[-1] == "LLMResponseReceived"


# -- 4: stale notifications are harmless ---------------------------------------------------


def test_stale_and_out_of_order_notifications_change_nothing(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    thread = new_thread(store)
    model.script = [calls(("add", {"a": 1, "b": 1})), text("two")]
    run_until_idle(engine, thread.notification)
    version = store.stream_version(thread.stream_name)
    assert version is not None
    for position in [0, 3, 1, version - 1, version + 5]:
        result = step(engine, Notification(stream_name=thread.stream_name, position=position))
        assert result.outcome is StepKind.STALE
    assert store.stream_version(thread.stream_name) == version
    assert model.calls == 2


# -- 5: a message sent mid-turn is answered, not lost --------------------------------------


def test_a_message_sent_during_a_model_call_is_answered_next(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    thread = new_thread(store, "first question")
    model.gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(step, engine, thread.notification)
        assert model.entered.wait(5)
        add_message(
            store, thread.thread_id, owner="alice", message="second question", now=datetime.now()
        )
        model.gate.set()
        result = in_flight.result(10)
    assert result.outcome is StepKind.EXECUTED
    run_until_idle(engine, result.follow_ups[0])
    assert model.calls == 2
    second_call = model.seen[1]
    assert [type(m).__name__ for m in second_call] == ["UserTurn", "AssistantTurn", "UserTurn"]
    assert second_call[-1] == UserTurn("second question")
    assert count(store, thread.stream_name, "LLMResponseReceived") == 2


# -- 6: every failure is an event ----------------------------------------------------------


def test_model_failures_are_recorded_retried_with_backoff_then_end_the_turn(
    store: MessageStore, engine: Engine, model: ScriptedModel, clock: Clock
) -> None:
    from messagedb_agent.llm.types import LLMError

    model.script = [LLMError("no usable answer", kind="bad_response", retryable=True)] * 3
    thread = new_thread(store)
    results = run_until_idle(engine, thread.notification, sleep=lambda s: clock.advance(s))
    events = read_thread(store, thread.stream_name)
    failures = [e.event for e in events if e.type == "LLMCallFailed"]
    claims = [e.event for e in events if e.type == "LLMCallRequested"]
    failure_times = [c.lease_expires_at - engine.config.llm_lease for c in claims]  # type: ignore[attr-defined]
    assert [f.attempt for f in failures] == [1, 2, 3]  # type: ignore[attr-defined]
    assert [f.retryable for f in failures] == [True, True, False]  # type: ignore[attr-defined]
    first, second = (
        f.retry_at - clock_at for f, clock_at in zip(failures[:2], failure_times[:2], strict=True)
    )  # type: ignore[attr-defined]
    assert second > first  # exponential backoff
    assert events[-1].type == "LLMResponseReceived"  # the turn ends, the thread goes on
    [ending] = [r for r in results if r.turn_completed]
    assert ending.reply is not None
    assert "try again" in ending.reply
    model.script = [text("better now")]
    appended = add_message(store, thread.thread_id, owner="alice", message="one more", now=clock())
    replies = [r.reply for r in run_until_idle(engine, appended.notification) if r.reply]
    assert replies == ["better now"]


def test_a_non_retryable_model_failure_ends_the_turn_at_once(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    from messagedb_agent.llm.types import LLMError

    model.script = [LLMError("bad request", kind="bad_request", retryable=False, status=400)]
    thread = new_thread(store)
    run_until_idle(engine, thread.notification)
    assert types_of(store, thread.stream_name)[-2:] == ["LLMCallFailed", "LLMResponseReceived"]
    assert model.calls == 1


@pytest.mark.parametrize(
    "fault",
    [
        ("auth", 401, "Google credentials: invalid_grant: account not found"),
        ("auth", 403, "403 PERMISSION_DENIED: aiplatform.endpoints.predict"),
        ("model_not_found", 404, "model not found in this region/project: gemini-9"),
        ("quota", 429, "429 RESOURCE_EXHAUSTED: quota is 0"),
    ],
)
def test_an_operator_fault_pauses_the_thread_until_it_is_fixed(
    store: MessageStore,
    engine: Engine,
    model: ScriptedModel,
    clock: Clock,
    fault: tuple[str, int, str],
) -> None:
    from messagedb_agent.llm.types import LLMError

    kind, status, message = fault
    model.script = [LLMError(message, kind=kind, retryable=False, status=status)] * 2
    thread = new_thread(store)
    run_until_idle(engine, thread.notification, max_wait=0)
    events = read_thread(store, thread.stream_name)
    assert events[-1].type == "ModelUnavailable"
    assert events[-1].event.notice  # type: ignore[attr-defined]
    assert "SessionCompleted" not in types_of(store, thread.stream_name)
    # still broken when it falls due: it waits again, without telling the user twice
    clock.advance(engine.config.unavailable_retry.total_seconds())
    head = read_thread(store, thread.stream_name)[-1]
    run_until_idle(
        engine, Notification(stream_name=thread.stream_name, position=head.position), max_wait=0
    )
    paused = [
        e.event for e in read_thread(store, thread.stream_name) if e.type == "ModelUnavailable"
    ]
    assert [bool(p.notice) for p in paused] == [True, False]  # type: ignore[attr-defined]
    # fixed: the next due retry answers the message that waited
    model.script = [text("here you are")]
    clock.advance(engine.config.unavailable_retry.total_seconds())
    head = read_thread(store, thread.stream_name)[-1]
    results = run_until_idle(
        engine, Notification(stream_name=thread.stream_name, position=head.position)
    )
    assert [r.reply for r in results if r.reply] == ["here you are"]
    assert types_of(store, thread.stream_name)[-1] == "LLMResponseReceived"


def test_tool_errors_are_fed_back_to_the_model(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    model.script = [calls(("add", {"a": 1})), text("sorry")]  # missing argument b
    thread = new_thread(store)
    run_until_idle(engine, thread.notification)
    result = next(m for m in model.seen[1] if type(m).__name__ == "ToolResult")
    assert result.is_error  # type: ignore[union-attr]
    assert count(store, thread.stream_name, "ToolExecutionFailed") == 1


def test_max_iterations_ends_a_runaway_turn(
    store: MessageStore, engine: Engine, model: ScriptedModel
) -> None:
    model.script = [calls(("add", {"a": 1, "b": 1}))] * 50
    thread = new_thread(store)
    run_until_idle(engine, thread.notification)
    events = read_thread(store, thread.stream_name)
    assert [e.type for e in events].count(
        "LLMResponseReceived"
    ) == engine.config.policy.max_iterations
    assert events[-1].type == "SessionCompleted"
    assert events[-1].event.completion_reason == "max_iterations"  # type: ignore[attr-defined]


# -- 7: tools cannot escape their user ------------------------------------------------------


def test_tools_act_for_the_thread_owner_whatever_the_model_says(
    store: MessageStore, engine: Engine, model: ScriptedModel, tools: EchoTools
) -> None:
    model.script = [calls(("whoami", {"user_id": "mallory", "owner": "mallory"})), text("ok")]
    thread = new_thread(store, owner="alice")
    run_until_idle(engine, thread.notification)
    [(name, _, ctx)] = tools.runs
    assert name == "whoami"
    assert ctx.owner == "alice"
    results = [
        e.event
        for e in read_thread(store, thread.stream_name)
        if e.type == "ToolExecutionCompleted"
    ]
    assert results[0].result == {"user": "alice"}  # type: ignore[attr-defined]


def test_a_transient_tool_failure_is_retried_after_a_backoff(
    store: MessageStore, engine: Engine, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    attempts: list[int] = []

    def flaky(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("the service took too long")
        return {"ok": True}

    tools.functions["flaky"] = flaky
    model.script = [calls(("flaky", {})), text("worked")]
    thread = new_thread(store)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    run_until_idle(engine, thread.notification, chain=50, sleep=sleep)
    events = read_thread(store, thread.stream_name)
    [failure] = [e.event for e in events if e.type == "ToolExecutionFailed"]
    assert failure.retryable  # type: ignore[attr-defined]
    assert failure.retry_at is not None  # type: ignore[attr-defined]
    assert waits  # the runner waited for the backoff before the second attempt
    assert len(attempts) == 2
    assert [e.type for e in events].count("ToolExecutionCompleted") == 1
    assert events[-1].type == "LLMResponseReceived"


def test_a_slow_worker_whose_lease_ran_out_cannot_append_a_second_result(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock
) -> None:
    thread = new_thread(store)
    slow_model = ScriptedModel(script=[text("slow answer")], gate=threading.Event())
    slow = Engine(store, slow_model, tools, EngineConfig(model="m"), clock=clock, worker="slow")
    fast = Engine(store, model, tools, EngineConfig(model="m"), clock=clock, worker="fast")
    model.script = [text("fast answer")]
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(step, slow, thread.notification)
        assert slow_model.entered.wait(5)  # the slow worker holds the claim, mid-call
        clock.advance(fast.config.llm_lease.total_seconds() + 1)
        head = Notification(stream_name=thread.stream_name, position=thread.position + 1)
        taken = step(fast, head)  # the lease ran out: attempt 2 takes the step over
        assert taken.outcome is StepKind.EXECUTED
        slow_model.gate.set()  # ...and now the slow worker finishes its call
        stuck.result(10)
    responses = [
        e for e in read_thread(store, thread.stream_name) if e.type == "LLMResponseReceived"
    ]
    assert len(responses) == 1  # same step id, same result id: the late write is a duplicate
    assert count(store, thread.stream_name, "LLMCallRequested") == 2
