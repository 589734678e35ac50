"""What the thread needs next, decided from its events and the time alone.

The decision is pure: the engine reads the clock once and passes `now`, so replaying a thread
with the same `now` always gives the same answer. Claims are honoured until their lease runs
out; a step whose claimant went silent is offered again with the next attempt number. An
outcome that arrives from an attempt already taken over (a late failure) changes nothing, and
attempts are bounded for tools as for the model, so no thread retries forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from messagedb_agent.events.agent import LLMCallFailed, LLMCallRequested, LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.delivery import (
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
)
from messagedb_agent.events.ids import delivery_step_id, llm_step_id, tool_step_id
from messagedb_agent.events.system import SessionCompleted, SessionStarted
from messagedb_agent.events.tool import (
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionRequested,
)
from messagedb_agent.events.user import SessionTerminationRequested, UserMessageAdded
from messagedb_agent.events.values import ToolCall
from messagedb_agent.projections.claims import LLMClaims


class StepKind(StrEnum):
    LLM_CALL = "llm_call"
    TOOL_EXECUTION = "tool_execution"
    WAIT_FOR_USER = "wait_for_user"
    IN_FLIGHT = "in_flight"
    RETRY_LATER = "retry_later"
    TERMINATION = "termination"
    DELIVER_REPLY = "deliver_reply"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Policy:
    max_iterations: int = 10
    max_llm_attempts: int = 3
    max_tool_attempts: int = 2
    max_delivery_attempts: int = 5


@dataclass(frozen=True, slots=True)
class NextStep:
    kind: StepKind
    step_id: str | None = None
    attempt: int = 1
    head: int = -1
    tool_calls: tuple[ToolCall, ...] = ()
    not_before: datetime | None = None
    reason: str | None = None
    message: str | None = None
    reply_position: int = -1


@dataclass(slots=True)
class _Delivery:
    """A finished turn's reply still owed to the callback URL."""

    step_id: str
    reply_position: int
    attempt: int = 0
    lease: datetime | None = None
    retry_at: datetime | None = None


@dataclass(slots=True)
class _Progress:
    stream_name: str | None = None
    head: int = -1
    started: bool = False
    completed: bool = False
    termination: str | None = None
    last_user_position: int = -1
    answered_through: int = -1
    responses_this_turn: int = 0
    claims: LLMClaims = field(default_factory=LLMClaims)
    answered_steps: set[str] = field(default_factory=set)
    # the LLM step in progress: claim without an outcome, or the latest failure
    llm_step: str | None = None
    llm_attempt: int = 0
    llm_lease: datetime | None = None
    llm_open: bool = False
    llm_failure: LLMCallFailed | None = None
    # the tool step in progress
    tool_step: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_done: set[str] = field(default_factory=set)
    tool_attempts: dict[str, int] = field(default_factory=dict)
    tool_leases: dict[str, datetime] = field(default_factory=dict)
    tool_failures: dict[str, ToolExecutionFailed] = field(default_factory=dict)
    results_since_response: bool = False
    callback_url: str | None = None
    delivery: _Delivery | None = None


def _fold(events: Sequence[Recorded[Event]], p: _Progress | None = None) -> _Progress:
    p = p if p is not None else _Progress()
    for recorded in events:
        event = recorded.event
        p.head = recorded.position
        p.stream_name = recorded.stream_name
        if isinstance(event, UserMessageAdded):
            p.last_user_position = recorded.position
            p.responses_this_turn = 0
        elif isinstance(event, LLMCallRequested):
            _llm_claimed(p, event, recorded.position)
        elif isinstance(event, LLMResponseReceived):
            _llm_answered(p, event, recorded)
        elif isinstance(event, LLMCallFailed):
            _llm_failed(p, event)
        elif isinstance(event, ToolExecutionRequested) and event.step_id == p.tool_step:
            if event.attempt >= p.tool_attempts.get(event.tool_call_id, 0):
                p.tool_attempts[event.tool_call_id] = event.attempt
                p.tool_leases[event.tool_call_id] = _aware(event.lease_expires_at)
        elif isinstance(event, ToolExecutionCompleted) and event.step_id == p.tool_step:
            p.tool_done.add(event.tool_call_id)
            p.results_since_response = True
        elif isinstance(event, ToolExecutionFailed) and event.step_id == p.tool_step:
            _tool_failed(p, event)
        elif isinstance(event, ReplyDeliveryRequested | ReplyDelivered | ReplyDeliveryFailed):
            _delivery_event(p, event)
        elif isinstance(event, SessionStarted):
            p.started = True
            p.callback_url = event.callback_url
        elif isinstance(event, SessionTerminationRequested):
            p.termination = event.reason
        elif isinstance(event, SessionCompleted):
            p.completed = True
            if p.callback_url and event.message:
                completed_step = delivery_step_id(f"{recorded.stream_name}/completed")
                p.delivery = _Delivery(completed_step, recorded.position)
    return p


def _llm_claimed(p: _Progress, event: LLMCallRequested, position: int) -> None:
    p.claims.claimed(event, position)
    if event.step_id in p.answered_steps:
        return
    if event.step_id != p.llm_step:
        p.llm_failure = None
    p.llm_step, p.llm_attempt = event.step_id, event.attempt
    p.llm_lease, p.llm_open = _aware(event.lease_expires_at), True


def _llm_answered(p: _Progress, event: LLMResponseReceived, recorded: Recorded[Event]) -> None:
    p.answered_steps.add(event.step_id)
    p.answered_through = max(p.answered_through, p.claims.answered_through(event, recorded))
    if event.step_id == p.llm_step:
        p.llm_open, p.llm_failure = False, None
    p.responses_this_turn += 1
    p.results_since_response = False
    if p.callback_url and not event.tool_calls:
        p.delivery = _Delivery(delivery_step_id(event.step_id), recorded.position)
    p.tool_step = tool_step_id(event.step_id)
    p.tool_calls = event.tool_calls
    p.tool_done, p.tool_attempts, p.tool_leases, p.tool_failures = set(), {}, {}, {}


def _llm_failed(p: _Progress, event: LLMCallFailed) -> None:
    """A failure ends its own attempt; one from an older attempt or an answered step is late."""
    p.claims.failed(event)
    if (
        event.step_id != p.llm_step
        or event.step_id in p.answered_steps
        or event.retry_count < p.llm_attempt
    ):
        return
    p.llm_open = False
    p.llm_failure = event


def _tool_failed(p: _Progress, event: ToolExecutionFailed) -> None:
    """A failure ends its own attempt; one from an attempt since superseded is late."""
    if event.retry_count < p.tool_attempts.get(event.tool_call_id, 0):
        return
    p.tool_leases.pop(event.tool_call_id, None)
    p.tool_failures[event.tool_call_id] = event
    if not event.retryable:
        p.tool_done.add(event.tool_call_id)
        p.results_since_response = True


def _delivery_event(
    p: _Progress, event: ReplyDeliveryRequested | ReplyDelivered | ReplyDeliveryFailed
) -> None:
    d = p.delivery
    if d is None or event.step_id != d.step_id:
        return  # an older reply's delivery: superseded by the newer reply, or already done
    if isinstance(event, ReplyDeliveryRequested):
        if event.attempt >= d.attempt:
            d.attempt, d.lease, d.retry_at = event.attempt, _aware(event.lease_expires_at), None
    elif isinstance(event, ReplyDelivered):
        p.delivery = None
    elif event.attempt >= d.attempt:
        if not event.retryable:
            p.delivery = None  # given up: the reply stays readable through the history API
        else:
            d.lease = None
            d.retry_at = _aware(event.retry_at) if event.retry_at else None


def _aware(moment: datetime) -> datetime:
    """Times are UTC; a naive one (from an older or foreign writer) is read as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class NextStepFold:
    """The same decision, folded incrementally: feed events as they are appended.

    `project_next_step(events, ...)` equals `NextStepFold().feed(events).decide(...)` for every
    split of `events` into successive feeds; the engine keeps one per thread it is driving so
    that each step costs the new events, not the whole history.
    """

    __slots__ = ("_progress",)

    def __init__(self) -> None:
        self._progress = _Progress()

    def feed(self, events: Sequence[Recorded[Event]]) -> NextStepFold:
        _fold(events, self._progress)
        return self

    def decide(self, now: datetime, policy: Policy | None = None) -> NextStep:
        return _decide(self._progress, _aware(now), policy or Policy())


def project_next_step(
    events: Sequence[Recorded[Event]], now: datetime, policy: Policy | None = None
) -> NextStep:
    return _decide(_fold(events), _aware(now), policy or Policy())


def _decide(p: _Progress, now: datetime, policy: Policy) -> NextStep:
    """A reply owed to the callback URL goes first; a delivery that waits never blocks work."""
    d = p.delivery
    if d is None:
        return _work(p, now, policy)
    leased = d.lease is not None and now < d.lease
    backing_off = d.retry_at is not None and now < d.retry_at
    if not leased and not backing_off and d.attempt < policy.max_delivery_attempts:
        return NextStep(
            StepKind.DELIVER_REPLY,
            d.step_id,
            d.attempt + 1,
            p.head,
            reply_position=d.reply_position,
        )
    work = _work(p, now, policy)
    idle = work.kind in (StepKind.WAIT_FOR_USER, StepKind.DONE)
    if not idle or d.attempt >= policy.max_delivery_attempts:
        return work
    if leased:
        return NextStep(StepKind.IN_FLIGHT, d.step_id, d.attempt, p.head, not_before=d.lease)
    return NextStep(StepKind.RETRY_LATER, d.step_id, d.attempt, p.head, not_before=d.retry_at)


def _work(p: _Progress, now: datetime, policy: Policy) -> NextStep:
    head = p.head
    if p.completed:
        return NextStep(StepKind.DONE, head=head)
    if p.termination is not None:
        return NextStep(StepKind.TERMINATION, head=head, reason=p.termination)
    if not p.started and p.last_user_position < 0:
        return NextStep(StepKind.WAIT_FOR_USER, head=head)

    pending = tuple(call for call in p.tool_calls if call.id not in p.tool_done)
    if pending and p.tool_step is not None:
        return _tool_step(p, pending, now, policy)

    if p.llm_open and p.llm_step is not None:
        if p.llm_lease is not None and now < p.llm_lease:
            return NextStep(
                StepKind.IN_FLIGHT, p.llm_step, p.llm_attempt, head, not_before=p.llm_lease
            )
        if p.llm_attempt >= policy.max_llm_attempts:
            return _give_up(head, "the model did not answer in time", "timeout")
        return NextStep(StepKind.LLM_CALL, p.llm_step, p.llm_attempt + 1, head)

    failure = p.llm_failure
    if failure is not None and p.llm_step is not None:
        if not failure.retryable or failure.retry_count >= policy.max_llm_attempts:
            return _give_up(head, failure.error_message, "failure")
        retry_at = _aware(failure.retry_at) if failure.retry_at is not None else None
        if retry_at is not None and now < retry_at:
            return NextStep(
                StepKind.RETRY_LATER, p.llm_step, p.llm_attempt, head, not_before=retry_at
            )
        return NextStep(StepKind.LLM_CALL, p.llm_step, p.llm_attempt + 1, head)

    needs_llm = p.last_user_position > p.answered_through or p.results_since_response
    if needs_llm:
        if p.responses_this_turn >= policy.max_iterations:
            return _give_up(
                head,
                f"stopped after {policy.max_iterations} model calls in one turn",
                "max_iterations",
            )
        assert p.stream_name is not None
        return NextStep(StepKind.LLM_CALL, llm_step_id(p.stream_name, head), 1, head)
    return NextStep(StepKind.WAIT_FOR_USER, head=head)


def _tool_step(
    p: _Progress, pending: tuple[ToolCall, ...], now: datetime, policy: Policy
) -> NextStep:
    """Wait while any pending call is leased (running it twice would cost twice), else rerun."""
    assert p.tool_step is not None
    attempt = max((p.tool_attempts.get(c.id, 0) for c in pending), default=0)
    live = [lease for c in pending if (lease := p.tool_leases.get(c.id)) and now < lease]
    if live:
        return NextStep(
            StepKind.IN_FLIGHT,
            p.tool_step,
            attempt,
            p.head,
            tool_calls=pending,
            not_before=min(live),
        )
    backoffs = [
        _aware(failure.retry_at)
        for c in pending
        if (failure := p.tool_failures.get(c.id)) is not None
        and failure.retryable
        and failure.retry_at is not None
        and failure.retry_count >= attempt
    ]
    if backoffs and now < max(backoffs) and attempt < policy.max_tool_attempts:
        return NextStep(
            StepKind.RETRY_LATER,
            p.tool_step,
            attempt,
            p.head,
            tool_calls=pending,
            not_before=max(backoffs),
        )
    if attempt >= policy.max_tool_attempts:
        failures = [
            failure
            for c in pending
            if (failure := p.tool_failures.get(c.id)) and failure.retry_count >= attempt
        ]
        if failures:
            return _give_up(p.head, failures[0].error_message, "failure")
        return _give_up(p.head, "a tool did not finish in time", "timeout")
    return NextStep(StepKind.TOOL_EXECUTION, p.tool_step, attempt + 1, p.head, tool_calls=pending)


def _give_up(head: int, reason: str, kind: str) -> NextStep:
    return NextStep(
        StepKind.TERMINATION,
        head=head,
        reason=kind,
        message=reason,
    )
