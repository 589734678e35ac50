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

import orjson

from messagedb_agent.channels.callback import DeliveryError, ReplySender
from messagedb_agent.engine.cache import ViewCache
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import (
    Event,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    Metadata,
    Recorded,
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
    SessionCompleted,
    ToolCall,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionRequested,
    to_message,
)
from messagedb_agent.events.ids import message_id
from messagedb_agent.llm.prompts import DEFAULT_SYSTEM_PROMPT
from messagedb_agent.llm.types import LLMClient, LLMConfig, LLMError, LLMResponse, ToolSpec
from messagedb_agent.notification import Notification
from messagedb_agent.projections import (
    NextStep,
    Policy,
    StepKind,
)
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import ConcurrencyError, DuplicateMessageError
from messagedb_agent.threads.reading import read_thread

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
    delivery_lease: timedelta = timedelta(seconds=30)


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
    steps: int = 0


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
        replies: ReplySender | None = None,
        views: ViewCache | None = None,
    ) -> None:
        self.store = store
        self.llm = llm
        self.tools = tools
        self.replies = replies
        self.views = views
        self.config = config or EngineConfig()
        self.clock = clock
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"

    # -- the step ---------------------------------------------------------------------------

    def step(self, notification: Notification) -> StepResult:
        """Run exactly one step for this notification (the unit Pub/Sub delivers)."""
        return self.advance(notification, max_steps=1)

    def advance(
        self,
        notification: Notification,
        *,
        max_steps: int = 1,
        budget_seconds: float | None = None,
    ) -> StepResult:
        """Run up to `max_steps` steps in a row while this worker holds the thread.

        Each step is claimed and appended exactly as a lone step would be, but the events this
        worker wrote are folded into its view instead of being read back, and the claim of the
        next step is written in the same transaction as the results of the previous one: one
        commit per step. The `expected_version` of that combined write detects anything
        appended meanwhile (a user message): the results are then appended on their own and
        the thread is read again before deciding again.
        """
        stream = notification.stream_name
        view = self._view(stream)
        if view is None:
            return StepResult(Outcome.EMPTY, stream)
        if notification.position != view.head.position:
            # Older: the head has (or will get) its own notification. Newer: not a position
            # this stream has; a bogus or misrouted message. Either way there is nothing to do.
            self._keep(view)
            return StepResult(Outcome.STALE, stream)
        return self._drive(view, max_steps, budget_seconds)

    def _view(self, stream: str) -> ThreadView | None:
        """The thread as of now: a cached view plus its tail, or a full read."""
        cached = self.views.take(stream) if self.views is not None else None
        if cached is not None:
            tail = read_thread(self.store, stream, after=cached.head.position)
            cached.extend(tail)
            return cached
        events = read_thread(self.store, stream)
        return ThreadView(events) if events else None

    def _keep(self, view: ThreadView) -> None:
        if self.views is not None:
            self.views.put(view)

    def _drive(self, view: ThreadView, max_steps: int, budget_seconds: float | None) -> StepResult:
        stream = view.stream_name
        policy = self.config.policy
        deadline = time.monotonic() + budget_seconds if budget_seconds is not None else None
        executed = 0
        held: NextStep | None = None
        last: NextStep | None = None
        turn_completed, reply, not_before = False, None, None
        while True:
            now = self.clock()
            if held is None:
                decision = view.decide(now, policy)
                if decision.kind not in _ACTIVE:
                    if executed == 0:
                        self._keep(view)
                        return _passive(stream, decision)
                    not_before = decision.not_before
                    break
                written = self._claim(view, self._claims_for(decision, view, now))
                if written is None:  # another worker appended first: what we hold is stale
                    if executed == 0:
                        return StepResult(
                            Outcome.LOST_CLAIM, stream, decision.kind, decision.step_id
                        )
                    view = ThreadView(read_thread(self.store, stream))
                    break
                view.extend(written)
            else:
                decision = held
            last = decision
            if decision.kind is StepKind.TERMINATION:
                executed += 1
                turn_completed, reply = True, _completion_message(view.events)
                if executed < max_steps and view.started and view.started.callback_url:
                    continue  # the closing message is owed to the callback URL
                break
            results = self._execute(decision, view, now)
            executed += 1
            response = _final_response(results)
            if response is not None:
                turn_completed, reply = True, response
            backoff = _backoff_until(results)
            before = view.head
            tentative = self._records(view, results, self.clock())
            view.extend(tentative)  # decided on as if written; undone by a re-read if not
            held = None
            claims: list[tuple[Event, str]] = []
            in_budget = deadline is None or time.monotonic() < deadline
            if executed < max_steps and backoff is None and in_budget:
                upcoming = view.decide(self.clock(), policy)
                if upcoming.kind in _ACTIVE:
                    held = upcoming
                    claims = self._claims_for(upcoming, view, self.clock())
            written = self._append(before, results, claims)
            if written is None:  # something was appended meanwhile: read it all again
                held = None
                view = ThreadView(read_thread(self.store, stream))
            else:
                view.extend(written[len(results) :])
            if backoff is not None:
                not_before = backoff
                break
            if executed >= max_steps and held is None:
                break
        self._keep(view)
        ended = last is not None and last.kind is StepKind.TERMINATION
        if ended and view.started is not None and view.started.callback_url:
            ended = False  # its closing message is still owed to the callback URL
        follow_up = not ended and (
            max_steps == 1
            or not turn_completed
            or not_before is not None  # a backoff to wait out: the caller needs the head
            or _has_unanswered(view.events)
        )
        return StepResult(
            Outcome.EXECUTED,
            stream,
            last.kind if last else None,
            last.step_id if last else None,
            follow_ups=(Notification(stream_name=stream, position=view.head.position),)
            if follow_up
            else (),
            not_before=not_before,
            turn_completed=turn_completed,
            reply=reply,
            steps=executed,
        )

    # -- deciding what to write ---------------------------------------------------------------

    def _claims_for(
        self, decision: NextStep, view: ThreadView, now: datetime
    ) -> list[tuple[Event, str]]:
        step_id = decision.step_id
        if decision.kind is StepKind.TERMINATION:
            return [(_completion(decision), message_id(view.stream_name, "completed"))]
        assert step_id is not None
        if decision.kind is StepKind.DELIVER_REPLY:
            assert view.started is not None
            assert view.started.callback_url
            return [
                (
                    ReplyDeliveryRequested(
                        step_id=step_id,
                        reply_position=decision.reply_position,
                        callback_url=view.started.callback_url,
                        attempt=decision.attempt,
                        lease_expires_at=now + self.config.delivery_lease,
                    ),
                    message_id(step_id, f"request-{decision.attempt}"),
                )
            ]
        if decision.kind is StepKind.LLM_CALL:
            started = view.started
            return [
                (
                    LLMCallRequested(
                        step_id=step_id,
                        attempt=decision.attempt,
                        model=(started.model if started else None) or self.config.model,
                        context_position=decision.head,
                        message_count=view.message_count,
                        lease_expires_at=now + self.config.llm_lease,
                        worker=self.worker,
                    ),
                    message_id(step_id, f"claim-{decision.attempt}"),
                )
            ]
        lease = now + self.config.tool_lease
        return [
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

    def _execute(
        self, decision: NextStep, view: ThreadView, now: datetime
    ) -> list[tuple[Event, str]]:
        """The one effect of a claimed step, as the events that record its outcome."""
        if decision.kind is StepKind.LLM_CALL:
            return self._call_llm(decision, view, now)
        if decision.kind is StepKind.DELIVER_REPLY:
            return self._deliver(decision, view, now)
        return self._run_tools(decision, view, now)

    def _deliver(
        self, decision: NextStep, view: ThreadView, now: datetime
    ) -> list[tuple[Event, str]]:
        step_id = decision.step_id
        assert step_id is not None
        attempt = decision.attempt
        claim = view.head.event
        assert isinstance(claim, ReplyDeliveryRequested)
        body = _reply_body(view, claim, step_id)
        if self.replies is None:
            error = DeliveryError("no reply sender is configured", retryable=False)
        else:
            try:
                status = self.replies.send(claim.callback_url, body, step_id)
            except DeliveryError as exc:
                error = exc
            else:
                return [
                    (
                        ReplyDelivered(step_id=step_id, attempt=attempt, status_code=status),
                        message_id(step_id, "delivered"),
                    )
                ]
        retryable = error.retryable and attempt < self.config.policy.max_delivery_attempts
        log.warning("reply delivery failed: %s (attempt %s)", error, attempt)
        return [
            (
                ReplyDeliveryFailed(
                    step_id=step_id,
                    attempt=attempt,
                    error_message=str(error),
                    status_code=error.status_code,
                    retryable=retryable,
                    retry_at=now + self._backoff(attempt) if retryable else None,
                ),
                message_id(step_id, f"failed-{attempt}"),
            )
        ]

    def _call_llm(
        self, decision: NextStep, view: ThreadView, now: datetime
    ) -> list[tuple[Event, str]]:
        step_id = decision.step_id
        assert step_id is not None
        claim = view.head.event
        model = claim.model if isinstance(claim, LLMCallRequested) else self.config.model
        context = view.context()
        config = LLMConfig(
            model=model,
            system_prompt=context.system_prompt or self.config.system_prompt,
            timeout_seconds=self.config.llm_timeout_seconds,
        )
        started_at = time.perf_counter()
        try:
            response = self.llm.call(list(context.messages), self.tools.specs(), config)
        except LLMError as error:
            retryable = error.retryable and decision.attempt < self.config.policy.max_llm_attempts
            delay = self._backoff(decision.attempt)
            log.warning("llm call failed: %s (%s, attempt %s)", error, error.kind, decision.attempt)
            failure = LLMCallFailed(
                step_id=step_id,
                error_message=str(error),
                error_kind=error.kind,
                retryable=retryable,
                retry_count=decision.attempt,
                retry_at=now + delay if retryable else None,
            )
            return [(failure, message_id(step_id, f"failure-{decision.attempt}"))]
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
        return [(result, message_id(step_id, "response"))]

    def _run_tools(
        self, decision: NextStep, view: ThreadView, now: datetime
    ) -> list[tuple[Event, str]]:
        step_id = decision.step_id
        assert step_id is not None
        stream = view.stream_name
        owner = view.owner
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
            retry_at = now + self._backoff(decision.attempt) if retryable else None
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
                        retry_at=retry_at,
                        execution_time_ms=round(run.execution_time_ms, 3),
                    ),
                    message_id(step_id, part),
                )
            )
        return results

    # -- writing ----------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> timedelta:
        return min(self.config.backoff_base * (1 << (attempt - 1)), self.config.backoff_max)

    def _claim(
        self, view: ThreadView, claims: list[tuple[Event, str]]
    ) -> list[Recorded[Event]] | None:
        """Append claim events at exactly the head read; None when another worker won."""
        try:
            return self._write(view.head, claims)
        except (ConcurrencyError, DuplicateMessageError):
            return None

    def _append(
        self,
        head: Recorded[Event],
        results: list[tuple[Event, str]],
        next_claims: list[tuple[Event, str]],
    ) -> list[Recorded[Event]] | None:
        """Append a step's results after `head`, with the next step's claim when there is one.

        If something was appended meanwhile (or a taken-over attempt already wrote a result)
        the results go in on their own, without `expected_version` and skipping ids that
        exist, and None tells the caller to read the thread again.
        """
        try:
            return self._write(head, results + next_claims)
        except (ConcurrencyError, DuplicateMessageError):
            pass
        meta = self._metadata(head)
        for event, id_ in results:
            message = to_message(event, meta, id=id_)
            try:
                self.store.write_message(
                    id_, head.stream_name, message.type, message.data, message.metadata
                )
            except DuplicateMessageError:
                continue
        return None

    def _write(
        self, head: Recorded[Event], pairs: list[tuple[Event, str]]
    ) -> list[Recorded[Event]]:
        meta = self._metadata(head)
        batch = [to_message(event, meta, id=id_) for event, id_ in pairs]
        position = self.store.write_messages(
            head.stream_name, batch, expected_version=head.position
        )
        first = position - len(batch) + 1
        now = self.clock()
        return [
            Recorded(id_, head.stream_name, first + i, -1, now, event, meta)
            for i, (event, id_) in enumerate(pairs)
        ]

    def _records(
        self, view: ThreadView, pairs: list[tuple[Event, str]], now: datetime
    ) -> list[Recorded[Event]]:
        """What `pairs` will look like once appended at the head (for deciding ahead)."""
        head = view.head
        meta = self._metadata(head)
        return [
            Recorded(id_, head.stream_name, head.position + 1 + i, -1, now, event, meta)
            for i, (event, id_) in enumerate(pairs)
        ]

    def _metadata(self, head: Recorded[Event]) -> Metadata:
        step_id = getattr(head.event, "step_id", None)
        return Metadata(step_id=step_id if isinstance(step_id, str) else None).follow(head)


_ACTIVE = {
    StepKind.LLM_CALL,
    StepKind.TOOL_EXECUTION,
    StepKind.TERMINATION,
    StepKind.DELIVER_REPLY,
}


def _passive(stream: str, decision: NextStep) -> StepResult:
    outcome = {
        StepKind.DONE: Outcome.DONE,
        StepKind.WAIT_FOR_USER: Outcome.WAITING,
        StepKind.IN_FLIGHT: Outcome.IN_FLIGHT,
        StepKind.RETRY_LATER: Outcome.RETRY_LATER,
    }[decision.kind]
    return StepResult(
        outcome, stream, decision.kind, decision.step_id, not_before=decision.not_before
    )


def _reply_body(view: ThreadView, claim: ReplyDeliveryRequested, delivery_id: str) -> bytes:
    reply = next((e for e in view.events if e.position == claim.reply_position), None)
    text = ""
    if reply is not None and isinstance(reply.event, LLMResponseReceived):
        text = reply.event.response_text
    elif reply is not None and isinstance(reply.event, SessionCompleted):
        text = reply.event.message or ""
    started = view.started
    payload = {
        "thread_id": started.thread_id if started else None,
        "position": claim.reply_position,
        "reply": {
            "text": text,
            "final": isinstance(reply.event if reply else None, SessionCompleted),
        },
        "delivery_id": delivery_id,
        "attempt": claim.attempt,
    }
    return orjson.dumps(payload)


def _completion(decision: NextStep) -> SessionCompleted:
    reason = decision.reason or "terminated"
    if reason in ("user_requested", "terminated"):
        return SessionCompleted(
            completion_reason="terminated", message="This conversation has been closed."
        )
    log.error("thread ends: %s (%s)", decision.message or reason, reason)
    if reason == "max_iterations":
        return SessionCompleted(completion_reason="max_iterations", message=FRIENDLY_LIMIT)
    if reason == "timeout":
        return SessionCompleted(completion_reason="timeout", message=FRIENDLY_FAILURE)
    return SessionCompleted(completion_reason="failure", message=FRIENDLY_FAILURE)


def _completion_message(events: list[Recorded[Event]]) -> str | None:
    event = events[-1].event
    return event.message if isinstance(event, SessionCompleted) else None


def _final_response(results: list[tuple[Event, str]]) -> str | None:
    for event, _ in results:
        if isinstance(event, LLMResponseReceived) and not event.tool_calls:
            return event.response_text
    return None


def _backoff_until(results: list[tuple[Event, str]]) -> datetime | None:
    """A failure to retry ends the chain: the backoff is somebody else's wait."""
    for event, _ in results:
        if isinstance(event, LLMCallFailed | ToolExecutionFailed) and event.retryable:
            return event.retry_at or datetime.min.replace(tzinfo=UTC)
        if isinstance(event, LLMCallFailed):
            return datetime.min.replace(tzinfo=UTC)
    return None


def _has_unanswered(events: list[Recorded[Event]]) -> bool:
    """A user message after the last final response: the chain stopped with work left."""
    for recorded in reversed(events):
        if recorded.type == "UserMessageAdded":
            return True
        if isinstance(recorded.event, LLMResponseReceived) and not recorded.event.tool_calls:
            return False
    return False


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
