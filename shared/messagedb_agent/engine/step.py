"""One step of a thread: read, decide, claim, execute, append. Stateless and exactly-once.

The protocol (see DESIGN.md's invariants):
- read the thread and decide the next step purely from its events and `now`;
- a notification older than the head is stale: acknowledged, nothing done;
- claim the step by appending its request event(s) with `expected_version` = the head read, so
  of several concurrent workers exactly one proceeds; a claim carries a lease after which a
  silent claimant's step is offered again;
- execute exactly one effect (one LLM call, or the pending tool calls) and append its results
  under ids derived from the step id, without `expected_version`, so a user message that arrived
  meanwhile neither blocks nor duplicates them;
- return the notification for the new head, which the caller publishes (or runs in-process).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from messagedb_agent.engine.notification import Notification
from messagedb_agent.engine.thread import read_thread
from messagedb_agent.events import (
    Event,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    Metadata,
    Recorded,
    SessionCompleted,
    SessionStarted,
    ToolCall,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionRequested,
    to_message,
)
from messagedb_agent.llm.prompts import DEFAULT_SYSTEM_PROMPT
from messagedb_agent.llm.types import LLMClient, LLMConfig, LLMError, LLMResponse, ToolSpec
from messagedb_agent.projections import (
    NextStep,
    Policy,
    StepKind,
    project_llm_context,
    project_next_step,
    project_session_state,
)
from messagedb_agent.projections.step_ids import message_id
from messagedb_agent.store import (
    ConcurrencyError,
    DuplicateMessageError,
    MessageStore,
    NewMessage,
)

log = logging.getLogger(__name__)

FRIENDLY_FAILURE = (
    "Sorry, I ran into a problem and couldn't finish this. Please try again in a moment."
)
FRIENDLY_LIMIT = (
    "I stopped here because this request took more steps than I'm allowed in one turn. "
    "Could you break it into smaller requests?"
)


class Outcome(StrEnum):
    EXECUTED = "executed"  # this worker ran the step and appended its results
    STALE = "stale"  # the notification is older than the head: the head has its own
    LOST_CLAIM = "lost_claim"  # another worker claimed the step first
    IN_FLIGHT = "in_flight"  # a live claim exists; its owner will finish it
    RETRY_LATER = "retry_later"  # a backoff is running; try again at `not_before`
    WAITING = "waiting"  # nothing to do until the user speaks
    DONE = "done"  # the thread has ended
    EMPTY = "empty"  # no such stream


@dataclass(frozen=True, slots=True)
class EngineConfig:
    model: str = "offline"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    policy: Policy = field(default_factory=Policy)
    llm_lease: timedelta = timedelta(seconds=120)
    tool_lease: timedelta = timedelta(seconds=60)
    tool_timeout_seconds: float = 10.0
    llm_timeout_seconds: float = 60.0
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_max: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Outcome
    stream_name: str
    kind: StepKind | None = None
    step_id: str | None = None
    follow_ups: tuple[Notification, ...] = ()
    not_before: datetime | None = None
    turn_completed: bool = False
    reply: str | None = None

    @property
    def acknowledge(self) -> bool:
        """Every outcome is final for this delivery; only exceptions ask for redelivery."""
        return True


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ToolCallContext:
    owner: str
    stream_name: str
    step_id: str
    tool_call_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class ToolRunResult:
    ok: bool
    result: object = None
    error_message: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    execution_time_ms: float = 0.0


class ToolExecutor(Protocol):
    """What the engine needs from the tools layer: their specs, and a way to run one call."""

    def specs(self) -> list[ToolSpec]: ...

    def run(self, call: ToolCall, ctx: ToolCallContext) -> ToolRunResult: ...


class Engine:
    """Runs steps; holds no thread state between calls, so any instance can run any step."""

    def __init__(
        self,
        store: MessageStore,
        llm: LLMClient,
        tools: ToolExecutor,
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.llm = llm
        self.tools = tools
        self.config = config or EngineConfig()
        self.clock = clock
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"

    # -- the step ---------------------------------------------------------------------------

    def step(self, notification: Notification) -> StepResult:
        stream = notification.stream_name
        events = read_thread(self.store, stream)
        if not events:
            return StepResult(Outcome.EMPTY, stream)
        head = events[-1].position
        if notification.position != head:
            # Older: the head has (or will get) its own notification. Newer: not a position
            # this stream has; a bogus or misrouted message. Either way there is nothing to do.
            return StepResult(Outcome.STALE, stream)
        now = self.clock()
        decision = project_next_step(events, now, self.config.policy)
        kind = decision.kind
        if kind is StepKind.DONE:
            return StepResult(Outcome.DONE, stream, kind)
        if kind is StepKind.WAIT_FOR_USER:
            return StepResult(Outcome.WAITING, stream, kind)
        if kind is StepKind.IN_FLIGHT:
            return StepResult(
                Outcome.IN_FLIGHT, stream, kind, decision.step_id, not_before=decision.not_before
            )
        if kind is StepKind.RETRY_LATER:
            return StepResult(
                Outcome.RETRY_LATER, stream, kind, decision.step_id, not_before=decision.not_before
            )
        if kind is StepKind.LLM_CALL:
            return self._llm_step(events, decision, now)
        if kind is StepKind.TOOL_EXECUTION:
            return self._tool_step(events, decision, now)
        return self._terminate(events, decision)

    # -- LLM --------------------------------------------------------------------------------

    def _llm_step(
        self, events: list[Recorded[Event]], decision: NextStep, now: datetime
    ) -> StepResult:
        stream = events[-1].stream_name
        step_id = decision.step_id
        assert step_id is not None
        started = _session_started(events)
        context = project_llm_context(events)
        model = (started.model if started else None) or self.config.model
        claim_event = LLMCallRequested(
            step_id=step_id,
            attempt=decision.attempt,
            model=model,
            context_position=decision.head,
            message_count=len(context.messages),
            lease_expires_at=now + self.config.llm_lease,
            worker=self.worker,
        )
        claim = self._claim(
            events, [(claim_event, message_id(step_id, f"claim-{decision.attempt}"))], step_id
        )
        if claim is None:
            return StepResult(Outcome.LOST_CLAIM, stream, decision.kind, step_id)
        config = LLMConfig(
            model=model,
            system_prompt=context.system_prompt or self.config.system_prompt,
            timeout_seconds=self.config.llm_timeout_seconds,
        )
        specs = self.tools.specs()
        started_at = time.perf_counter()
        try:
            response = self.llm.call(list(context.messages), specs, config)
        except LLMError as exc:
            return self._llm_failed(events, decision, claim, exc, now)
        latency_ms = (time.perf_counter() - started_at) * 1000
        result = LLMResponseReceived(
            step_id=step_id,
            response_text=response.text,
            tool_calls=_unique_call_ids(response, step_id),
            model_name=response.model_name,
            token_usage=response.token_usage,
            finish_reason=response.finish_reason,
            latency_ms=round(latency_ms, 3),
        )
        position = self._append(stream, [(result, message_id(step_id, "response"))], claim)
        turn_done = not result.tool_calls
        return StepResult(
            Outcome.EXECUTED,
            stream,
            decision.kind,
            step_id,
            follow_ups=(Notification(stream_name=stream, position=position),),
            turn_completed=turn_done,
            reply=result.response_text if turn_done else None,
        )

    def _llm_failed(
        self,
        events: list[Recorded[Event]],
        decision: NextStep,
        claim: Recorded[Event],
        error: LLMError,
        now: datetime,
    ) -> StepResult:
        stream = claim.stream_name
        step_id = decision.step_id
        assert step_id is not None
        retryable = error.retryable and decision.attempt < self.config.policy.max_llm_attempts
        delay = min(
            self.config.backoff_base * (2 ** (decision.attempt - 1)), self.config.backoff_max
        )
        failure = LLMCallFailed(
            step_id=step_id,
            error_message=str(error),
            error_kind=error.kind,
            retryable=retryable,
            retry_count=decision.attempt,
            retry_at=now + delay if retryable else None,
        )
        log.warning("llm call failed: %s (%s, attempt %s)", error, error.kind, decision.attempt)
        position = self._append(
            stream, [(failure, message_id(step_id, f"failure-{decision.attempt}"))], claim
        )
        return StepResult(
            Outcome.EXECUTED,
            stream,
            decision.kind,
            step_id,
            follow_ups=(Notification(stream_name=stream, position=position),),
            not_before=failure.retry_at,
        )

    # -- tools ------------------------------------------------------------------------------

    def _tool_step(
        self, events: list[Recorded[Event]], decision: NextStep, now: datetime
    ) -> StepResult:
        stream = events[-1].stream_name
        step_id = decision.step_id
        assert step_id is not None
        lease = now + self.config.tool_lease
        requests: list[tuple[Event, str]] = [
            (
                ToolExecutionRequested(
                    step_id=step_id,
                    tool_call_id=call.id,
                    tool_name=call.name,
                    arguments=call.arguments,
                    attempt=decision.attempt,
                    lease_expires_at=lease,
                ),
                message_id(step_id, f"request-{call.id}-{decision.attempt}"),
            )
            for call in decision.tool_calls
        ]
        claim = self._claim(events, requests, step_id)
        if claim is None:
            return StepResult(Outcome.LOST_CLAIM, stream, decision.kind, step_id)
        owner = _owner(events)
        results: list[tuple[Event, str]] = []
        for call in decision.tool_calls:
            ctx = ToolCallContext(
                owner=owner, stream_name=stream, step_id=step_id, tool_call_id=call.id, now=now
            )
            run = self.tools.run(call, ctx)
            if run.ok:
                results.append(
                    (
                        ToolExecutionCompleted(
                            step_id=step_id,
                            tool_call_id=call.id,
                            tool_name=call.name,
                            result=run.result,
                            execution_time_ms=round(run.execution_time_ms, 3),
                        ),
                        message_id(step_id, f"result-{call.id}"),
                    )
                )
                continue
            retryable = run.retryable and decision.attempt < self.config.policy.max_tool_attempts
            part = f"failure-{call.id}-{decision.attempt}" if retryable else f"result-{call.id}"
            results.append(
                (
                    ToolExecutionFailed(
                        step_id=step_id,
                        tool_call_id=call.id,
                        tool_name=call.name,
                        error_message=run.error_message or "the tool failed",
                        error_kind=run.error_kind or "exception",
                        retryable=retryable,
                        retry_count=decision.attempt,
                        execution_time_ms=round(run.execution_time_ms, 3),
                    ),
                    message_id(step_id, part),
                )
            )
        position = self._append(stream, results, claim)
        return StepResult(
            Outcome.EXECUTED,
            stream,
            decision.kind,
            step_id,
            follow_ups=(Notification(stream_name=stream, position=position),),
        )

    # -- termination ------------------------------------------------------------------------

    def _terminate(self, events: list[Recorded[Event]], decision: NextStep) -> StepResult:
        stream = events[-1].stream_name
        reason = decision.reason or "terminated"
        if reason in ("user_requested", "terminated"):
            completed = SessionCompleted(
                completion_reason="terminated", message="This conversation has been closed."
            )
        elif reason == "max_iterations":
            completed = SessionCompleted(completion_reason="max_iterations", message=FRIENDLY_LIMIT)
        elif reason == "timeout":
            completed = SessionCompleted(completion_reason="timeout", message=FRIENDLY_FAILURE)
        else:
            completed = SessionCompleted(completion_reason="failure", message=FRIENDLY_FAILURE)
        if completed.completion_reason != "terminated":
            log.error("thread %s ends: %s (%s)", stream, decision.message or reason, reason)
        claim_id = message_id(stream, "completed")
        recorded = self._claim(events, [(completed, claim_id)], None)
        if recorded is None:
            return StepResult(Outcome.LOST_CLAIM, stream, decision.kind)
        return StepResult(
            Outcome.EXECUTED,
            stream,
            decision.kind,
            turn_completed=True,
            reply=completed.message,
        )

    # -- writing ----------------------------------------------------------------------------

    def _claim(
        self, events: list[Recorded[Event]], claims: list[tuple[Event, str]], step_id: str | None
    ) -> Recorded[Event] | None:
        """Append claim events at exactly the head read; None when another worker won."""
        head = events[-1]
        meta = Metadata(step_id=step_id).follow(head)
        batch = [to_message(event, meta, id=id_) for event, id_ in claims]
        try:
            position = self.store.write_messages(
                head.stream_name, batch, expected_version=head.position
            )
        except (ConcurrencyError, DuplicateMessageError):
            return None
        event, id_ = claims[-1]
        return Recorded(
            id=id_,
            stream_name=head.stream_name,
            position=position,
            global_position=head.global_position,
            time=self.clock(),
            event=event,
            metadata=meta,
        )

    def _append(self, stream: str, results: list[tuple[Event, str]], cause: Recorded[Event]) -> int:
        """Append a step's results; an id that already exists means it was appended before."""
        meta = Metadata(step_id=cause.metadata.step_id).follow(cause)
        batch: list[NewMessage] = [to_message(event, meta, id=id_) for event, id_ in results]
        try:
            return self.store.write_messages(stream, batch)
        except DuplicateMessageError:
            position = -1
            for message in batch:
                try:
                    position = self.store.write_message(
                        message.id, stream, message.type, message.data, message.metadata
                    )
                except DuplicateMessageError:
                    continue
            if position < 0:
                version = self.store.stream_version(stream)
                position = version if version is not None else -1
            return position


def _session_started(events: list[Recorded[Event]]) -> SessionStarted | None:
    for recorded in events:
        if isinstance(recorded.event, SessionStarted):
            return recorded.event
    return None


def _owner(events: list[Recorded[Event]]) -> str:
    """The acting user of every tool call: the thread's owner, never a model argument."""
    started = _session_started(events)
    if started is None:
        raise ValueError("thread has no SessionStarted event, so it has no owner")
    return started.owner


def _unique_call_ids(response: LLMResponse, step_id: str) -> tuple[ToolCall, ...]:
    """Tool call ids unique within the response (providers may omit or repeat them)."""
    seen: set[str] = set()
    calls: list[ToolCall] = []
    for index, call in enumerate(response.tool_calls):
        call_id = call.id
        if not call_id or call_id in seen:
            call_id = f"call-{step_id[:8]}-{index}"
        seen.add(call_id)
        calls.append(call if call_id == call.id else call.model_copy(update={"id": call_id}))
    return tuple(calls)


def session_summary(events: list[Recorded[Event]]) -> str:
    state = project_session_state(events)
    return (
        f"{state.status}, {state.message_count} messages, {state.token_usage.total_tokens} tokens"
    )
