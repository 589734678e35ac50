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
from functools import singledispatch

from messagedb_agent.events.agent import LLMCallFailed, LLMCallRequested, LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.delivery import (
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
)
from messagedb_agent.events.ids import (
    closing_delivery_step_id,
    delivery_step_id,
    llm_step_id,
    tool_step_id,
)
from messagedb_agent.events.system import SessionCompleted, SessionStarted
from messagedb_agent.events.tool import (
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionRequested,
)
from messagedb_agent.events.user import SessionTerminationRequested, UserMessageAdded
from messagedb_agent.events.values import ToolCall
from messagedb_agent.projections.anchors import Anchors


class StepKind(StrEnum):
    """The one vocabulary of the step protocol.

    A decision (`NextStep.kind`) is either work to claim and run, or the reason there is none
    now; a step's result (`StepResult.outcome` in the engine) is that same reason, or one of
    the four things only a worker holding a notification can find out.
    """

    # work: claimed, then run by exactly one worker
    LLM_CALL = "llm_call"
    TOOL_EXECUTION = "tool_execution"
    TERMINATION = "termination"
    DELIVER_REPLY = "deliver_reply"
    # no work now, and why
    WAIT_FOR_USER = "waiting"
    IN_FLIGHT = "in_flight"  # a live claim exists; its owner will finish it
    RETRY_LATER = "retry_later"  # a backoff is running; try again at `not_before`
    DONE = "done"  # the thread has ended
    # what a worker found when it came to step
    EXECUTED = "executed"  # it claimed the step, ran it and appended its results
    STALE = "stale"  # the notification is older than the head: the head has its own
    LOST_CLAIM = "lost_claim"  # another worker claimed the step first
    EMPTY = "empty"  # no such stream
    WAITING = "waiting"  # WAIT_FOR_USER by another name, as an outcome reads

    @property
    def is_work(self) -> bool:
        return self in _WORK


_WORK = frozenset(
    {StepKind.LLM_CALL, StepKind.TOOL_EXECUTION, StepKind.TERMINATION, StepKind.DELIVER_REPLY}
)


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
    anchors: Anchors = field(default_factory=Anchors)
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


def _fold(events: Sequence[Recorded[Event]], p: _Progress) -> _Progress:
    for recorded in events:
        p.head = recorded.position
        p.stream_name = recorded.stream_name
        _apply(recorded.event, recorded, p)
    return p


@singledispatch
def _apply(event: Event, recorded: Recorded[Event], p: _Progress) -> None:
    """Events that do not change what the thread needs next (and unknown ones) change nothing."""


@_apply.register
def _(event: SessionStarted, recorded: Recorded[Event], p: _Progress) -> None:
    p.started = True
    p.callback_url = event.callback_url


@_apply.register
def _(event: UserMessageAdded, recorded: Recorded[Event], p: _Progress) -> None:
    p.last_user_position = recorded.position
    p.responses_this_turn = 0


@_apply.register
def _(event: SessionTerminationRequested, recorded: Recorded[Event], p: _Progress) -> None:
    p.termination = event.reason


@_apply.register
def _(event: SessionCompleted, recorded: Recorded[Event], p: _Progress) -> None:
    p.completed = True
    if p.callback_url and event.message:
        p.delivery = _Delivery(closing_delivery_step_id(recorded.stream_name), recorded.position)


@_apply.register
def _(event: LLMCallRequested, recorded: Recorded[Event], p: _Progress) -> None:
    p.anchors.claimed(event, recorded.position)
    if event.step_id in p.answered_steps:
        return
    if event.step_id != p.llm_step:
        p.llm_failure = None
    p.llm_step, p.llm_attempt = event.step_id, event.attempt
    p.llm_lease, p.llm_open = _aware(event.lease_expires_at), True


@_apply.register
def _(event: LLMResponseReceived, recorded: Recorded[Event], p: _Progress) -> None:
    p.answered_steps.add(event.step_id)
    p.answered_through = max(p.answered_through, p.anchors.answered_through(event, recorded))
    if event.step_id == p.llm_step:
        p.llm_open, p.llm_failure = False, None
    p.responses_this_turn += 1
    p.results_since_response = False
    if p.callback_url and not event.tool_calls:
        p.delivery = _Delivery(delivery_step_id(event.step_id), recorded.position)
    p.tool_step = tool_step_id(event.step_id)
    p.tool_calls = event.tool_calls
    p.tool_done, p.tool_attempts, p.tool_leases, p.tool_failures = set(), {}, {}, {}


@_apply.register
def _(event: LLMCallFailed, recorded: Recorded[Event], p: _Progress) -> None:
    """A failure ends its own attempt; one from an older attempt or an answered step is late."""
    p.anchors.failed(event)
    if (
        event.step_id != p.llm_step
        or event.step_id in p.answered_steps
        or event.attempt < p.llm_attempt
    ):
        return
    p.llm_open = False
    p.llm_failure = event


@_apply.register
def _(event: ToolExecutionRequested, recorded: Recorded[Event], p: _Progress) -> None:
    if event.step_id == p.tool_step and event.attempt >= p.tool_attempts.get(event.tool_call_id, 0):
        p.tool_attempts[event.tool_call_id] = event.attempt
        p.tool_leases[event.tool_call_id] = _aware(event.lease_expires_at)


@_apply.register
def _(event: ToolExecutionCompleted, recorded: Recorded[Event], p: _Progress) -> None:
    if event.step_id == p.tool_step:
        p.tool_done.add(event.tool_call_id)
        p.results_since_response = True


@_apply.register
def _(event: ToolExecutionFailed, recorded: Recorded[Event], p: _Progress) -> None:
    """A failure ends its own attempt; one from an attempt since superseded is late."""
    if event.step_id != p.tool_step or event.attempt < p.tool_attempts.get(event.tool_call_id, 0):
        return
    p.tool_leases.pop(event.tool_call_id, None)
    p.tool_failures[event.tool_call_id] = event
    if not event.retryable:
        p.tool_done.add(event.tool_call_id)
        p.results_since_response = True


@_apply.register
def _(event: ReplyDeliveryRequested, recorded: Recorded[Event], p: _Progress) -> None:
    d = p.delivery
    if d is not None and event.step_id == d.step_id and event.attempt >= d.attempt:
        d.attempt, d.lease, d.retry_at = event.attempt, _aware(event.lease_expires_at), None


@_apply.register
def _(event: ReplyDelivered, recorded: Recorded[Event], p: _Progress) -> None:
    if p.delivery is not None and event.step_id == p.delivery.step_id:
        p.delivery = None


@_apply.register
def _(event: ReplyDeliveryFailed, recorded: Recorded[Event], p: _Progress) -> None:
    """An older reply's delivery is superseded by the newer reply, or already done."""
    d = p.delivery
    if d is None or event.step_id != d.step_id or event.attempt < d.attempt:
        return
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

    def pending_tool_calls(self) -> tuple[ToolCall, ...]:
        return _pending(self._progress)


def project_next_step(
    events: Sequence[Recorded[Event]], now: datetime, policy: Policy | None = None
) -> NextStep:
    return NextStepFold().feed(events).decide(now, policy)


def project_pending_tool_calls(events: Sequence[Recorded[Event]]) -> tuple[ToolCall, ...]:
    """The unresolved calls of the latest response that asked for tools, in the model's order."""
    return NextStepFold().feed(events).pending_tool_calls()


def _pending(p: _Progress) -> tuple[ToolCall, ...]:
    if p.tool_step is None:
        return ()
    return tuple(call for call in p.tool_calls if call.id not in p.tool_done)


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

    pending = _pending(p)
    if pending:
        return _tool_step(p, pending, now, policy)

    if p.llm_open and p.llm_step is not None:
        if p.llm_lease is not None and now < p.llm_lease:
            return NextStep(
                StepKind.IN_FLIGHT, p.llm_step, p.llm_attempt, head, not_before=p.llm_lease
            )
        if p.llm_attempt >= policy.max_llm_attempts:
            return _give_up(head, "timeout", "the model did not answer in time")
        return NextStep(StepKind.LLM_CALL, p.llm_step, p.llm_attempt + 1, head)

    failure = p.llm_failure
    if failure is not None and p.llm_step is not None:
        if not failure.retryable or failure.attempt >= policy.max_llm_attempts:
            return _give_up(head, "failure", failure.error_message)
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
                "max_iterations",
                f"stopped after {policy.max_iterations} model calls in one turn",
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
        and failure.attempt >= attempt
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
            if (failure := p.tool_failures.get(c.id)) and failure.attempt >= attempt
        ]
        if failures:
            return _give_up(p.head, "failure", failures[0].error_message)
        return _give_up(p.head, "timeout", "a tool did not finish in time")
    return NextStep(StepKind.TOOL_EXECUTION, p.tool_step, attempt + 1, p.head, tool_calls=pending)


def _give_up(head: int, reason: str, message: str) -> NextStep:
    """End the turn: `reason` is the completion reason, `message` says why for the log."""
    return NextStep(StepKind.TERMINATION, head=head, reason=reason, message=message)
