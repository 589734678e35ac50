"""Run each case through the real engine, in-process, exactly as the command line talks to it.

Every case gets a fresh thread owned by a user of its own (`eval-<run id>-<case id>`), so
one case's tasks never show up in another's list. Its setup runs first: conversation turns
through the model, or tool calls made directly with the owner's context. Then the request
is added and the engine runs until the thread waits for the user again. What the model
actually asked for is read back from the thread's own events (`LLMResponseReceived`'s tool
calls, with each call's `ToolExecutionCompleted` or `ToolExecutionFailed`), never from a side
channel: the eval measures what the event log says happened.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.evaluation.cases import EvalCase, EvalSet
from messagedb_agent.evaluation.metrics import (
    ActualCall,
    Verdict,
    judge,
    prediction_json,
    reference_json,
    vertex_scores,
)
from messagedb_agent.events import (
    LLMCallFailed,
    LLMResponseReceived,
    ToolCall,
    ToolExecutionCompleted,
    ToolExecutionFailed,
)
from messagedb_agent.projections.next_step import StepKind
from messagedb_agent.threads.commands import Appended, add_message, start_thread
from messagedb_agent.threads.reading import read_thread
from messagedb_agent.tools.context import ToolContext

if TYPE_CHECKING:
    from messagedb_agent.engine.step import Engine, StepResult
    from messagedb_agent.events import Event, Recorded

TURN_STEPS = 50  # steps one delivery may chain, as the command line runs a turn


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: EvalCase
    actual: tuple[ActualCall, ...]
    verdict: Verdict
    scores: dict[str, float]
    reply: str = ""
    thread_id: str | None = None
    error: str | None = None
    seconds: float = 0.0
    service_scores: dict[str, float] | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.verdict.passed

    @property
    def tools_right(self) -> bool:
        return self.error is None and self.verdict.tools_right

    @property
    def prediction(self) -> str:
        return prediction_json(self.reply, self.actual)

    @property
    def reference(self) -> str:
        return reference_json(self.verdict.reference)


@dataclass(frozen=True, slots=True)
class ServiceRun:
    """What the Gen AI evaluation service answered for the run's cases."""

    endpoint: str
    means: dict[str, float]


@dataclass(frozen=True, slots=True)
class EvalRun:
    eval_set: EvalSet
    model: str
    run_id: str
    started_at: datetime
    finished_at: datetime
    results: tuple[CaseResult, ...]
    service: ServiceRun | None = None
    selection: dict[str, object] = field(default_factory=dict)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def run_cases(
    engine: Engine,
    cases: Sequence[EvalCase],
    *,
    run_id: str,
    on_result: Callable[[int, CaseResult], None] | None = None,
    max_message_length: int = 5000,
) -> list[CaseResult]:
    """Each case's result, in order; `on_result(index, result)` hears of each as it lands."""
    results: list[CaseResult] = []
    for index, case in enumerate(cases):
        result = run_case(engine, case, run_id=run_id, max_message_length=max_message_length)
        results.append(result)
        if on_result is not None:
            on_result(index, result)
    return results


def run_case(
    engine: Engine, case: EvalCase, *, run_id: str, max_message_length: int = 5000
) -> CaseResult:
    """One case, start to finish. A failure to run it (a setup call refused, the database
    gone) is the case's `error`, and the case fails; the run goes on with the next one."""
    started = time.perf_counter()
    owner = f"eval-{run_id}-{case.id}"
    thread_id: str | None = None
    try:
        opened = start_thread(
            engine.store,
            owner=owner,
            message=None,
            now=_now(engine),
            title=f"eval {case.id}",
            max_length=max_message_length,
        )
        thread_id = opened.thread_id
        for number, step in enumerate(case.setup):
            if step.message is not None:
                _, steps = _turn(engine, opened.thread_id, owner, step.message, max_message_length)
                unfinished = _unfinished(steps)
                if unfinished is not None:
                    raise RuntimeError(f"setup message {number + 1} {unfinished}")
            else:
                _set_up_with_tool(engine, owner, opened.stream_name, run_id, case, number)
        asked, steps = _turn(engine, opened.thread_id, owner, case.request, max_message_length)
        actual, reply, failure = read_turn(engine, asked.stream_name, asked.position)
        unfinished = _unfinished(steps)
    except Exception as exc:  # one broken case must not end the run
        return _failed(case, thread_id, f"{type(exc).__name__}: {exc}", started)
    verdict = judge(case.expected, actual)
    scores = vertex_scores(prediction_json(reply, actual), reference_json(verdict.reference))
    return CaseResult(
        case,
        actual,
        verdict,
        scores,
        reply=reply,
        thread_id=thread_id,
        error=failure or unfinished,
        seconds=time.perf_counter() - started,
    )


def _turn(
    engine: Engine, thread_id: str, owner: str, message: str, max_length: int
) -> tuple[Appended, list[StepResult]]:
    """The user says `message`; the engine runs until the thread waits again."""
    appended = add_message(
        engine.store,
        thread_id,
        owner=owner,
        message=message,
        now=_now(engine),
        max_length=max_length,
    )
    return appended, run_until_idle(engine, appended.notification, chain=TURN_STEPS)


def _unfinished(steps: Sequence[StepResult]) -> str | None:
    """Why the engine stopped before the turn was over (a backoff longer than it waits, a
    claim still held, the step budget spent), or None when the thread waits for the user."""
    if not steps:
        return "did not run: the engine took no step"
    last = steps[-1]
    if last.follow_ups:
        return f"did not finish within {len(steps)} steps"
    if last.outcome in (StepKind.RETRY_LATER, StepKind.IN_FLIGHT):
        until = f" until {last.not_before.isoformat()}" if last.not_before else ""
        return f"did not finish: the thread waits ({last.outcome.value}){until}"
    return None


def read_turn(
    engine: Engine, stream: str, position: int
) -> tuple[tuple[ActualCall, ...], str, str | None]:
    """The calls the model made after `position`, its last reply, and why the turn failed
    (a model call that ran out of attempts), from the thread's events."""
    events = read_thread(engine.store, stream, after=position)
    return actual_calls(events), _last_reply(events), _turn_failure(events)


def actual_calls(events: Sequence[Recorded[Event]]) -> tuple[ActualCall, ...]:
    outcomes: dict[str, tuple[bool, str | None]] = {}
    for recorded in events:
        event = recorded.event
        if isinstance(event, ToolExecutionCompleted):
            outcomes[event.tool_call_id] = (True, None)
        elif isinstance(event, ToolExecutionFailed):
            outcomes[event.tool_call_id] = (False, event.error_message)
    calls: list[ActualCall] = []
    for recorded in events:
        event = recorded.event
        if isinstance(event, LLMResponseReceived):
            for call in event.tool_calls:
                ok, error = outcomes.get(call.id, (None, None))
                calls.append(ActualCall(call.name, dict(call.arguments), ok, error))
    return tuple(calls)


def _last_reply(events: Sequence[Recorded[Event]]) -> str:
    texts = [
        r.event.response_text
        for r in events
        if isinstance(r.event, LLMResponseReceived) and r.event.response_text
    ]
    return texts[-1] if texts else ""


def _turn_failure(events: Sequence[Recorded[Event]]) -> str | None:
    """Why the model gave no real answer: its last failure, unless a later response answered.

    A failure that cannot be retried ends the turn with a friendly reply written as a response
    of the same step; that reply is the ending, not an answer, so it does not clear it.
    """
    failure: str | None = None
    ended_by: str | None = None  # the step whose failure ended the turn
    for recorded in events:
        event = recorded.event
        if isinstance(event, LLMCallFailed):
            failure = f"model call failed ({event.error_kind}): {event.error_message}"
            ended_by = None if event.retryable else event.step_id
        elif isinstance(event, LLMResponseReceived) and event.step_id != ended_by:
            failure, ended_by = None, None
    return failure


def _set_up_with_tool(
    engine: Engine, owner: str, stream: str, run_id: str, case: EvalCase, number: int
) -> None:
    step = case.setup[number]
    assert step.tool is not None
    call = ToolCall(id=f"setup-{number}", name=step.tool, arguments=dict(step.arguments))
    context = ToolContext(
        owner=owner,
        stream_name=stream,
        step_id=f"eval-{run_id}-{case.id}-setup",
        tool_call_id=call.id,
        store=engine.store,
        now=_now(engine),
    )
    outcome = engine.tools.run(call, context)
    if not outcome.ok:
        raise RuntimeError(f"setup call {step.tool} failed: {outcome.error_message}")


def _failed(case: EvalCase, thread_id: str | None, error: str, started: float) -> CaseResult:
    verdict = judge(case.expected, ())
    scores = vertex_scores(prediction_json("", ()), reference_json(verdict.reference))
    failed = Verdict(False, False, (error, *verdict.problems), verdict.reference)
    return CaseResult(
        case,
        (),
        failed,
        scores,
        thread_id=thread_id,
        error=error,
        seconds=time.perf_counter() - started,
    )


def _now(engine: Engine) -> datetime:
    now = engine.clock()
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
