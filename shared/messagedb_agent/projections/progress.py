"""How far a thread's steps have got: the fold behind every next-step decision.

One handler per event type (unknown types change nothing). Claims, outcomes and deliveries are
matched to the step and attempt they belong to, so an outcome that arrives from an attempt
already taken over (a late failure) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import singledispatch

from messagedb_agent.events.agent import (
    ContextCompacted,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    ModelUnavailable,
)
from messagedb_agent.events.approval import (
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
)
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.delivery import (
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
)
from messagedb_agent.events.ids import closing_delivery_step_id, delivery_step_id, tool_step_id
from messagedb_agent.events.system import SessionCompleted, SessionStarted
from messagedb_agent.events.tool import (
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionInDoubt,
    ToolExecutionRequested,
)
from messagedb_agent.events.user import (
    SessionTerminationRequested,
    TurnCancelled,
    UserMessageAdded,
)
from messagedb_agent.events.values import ToolCall
from messagedb_agent.projections.anchors import Anchors


@dataclass(slots=True)
class Delivery:
    """A finished turn's reply still owed to the callback URL."""

    step_id: str
    reply_position: int
    attempt: int = 0
    lease: datetime | None = None
    retry_at: datetime | None = None


@dataclass(slots=True)
class Progress:
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
    # model steps a cancellation stopped: their late outcomes are recorded, never acted on
    cancelled_steps: set[str] = field(default_factory=set)
    # the LLM step in progress: claim without an outcome, or the latest failure
    llm_step: str | None = None
    llm_attempt: int = 0
    llm_lease: datetime | None = None
    llm_open: bool = False
    llm_failure: LLMCallFailed | None = None
    llm_purpose: str = "reply"
    llm_truncations: int = 0  # attempts of this step cut at their output budget
    compaction_abandoned: bool = False  # this turn's compaction failed for good: go without
    # the tool step in progress
    tool_step: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_done: set[str] = field(default_factory=set)
    tool_attempts: dict[str, int] = field(default_factory=dict)
    tool_leases: dict[str, datetime] = field(default_factory=dict)
    tool_failures: dict[str, ToolExecutionFailed] = field(default_factory=dict)
    # calls waiting for their owner's decision, and when each wait ends (None: never)
    tool_awaiting: dict[str, datetime | None] = field(default_factory=dict)
    tool_approved: set[str] = field(default_factory=set)
    # calls in doubt whose owner was asked whether to rerun them (call -> the attempt in
    # doubt), and those whose rerun was granted and not yet claimed
    tool_retry_of: dict[str, int] = field(default_factory=dict)
    tool_retried: set[str] = field(default_factory=set)
    results_since_response: bool = False
    callback_url: str | None = None
    delivery: Delivery | None = None


def fold(events: Sequence[Recorded[Event]], p: Progress) -> Progress:
    for recorded in events:
        p.head = recorded.position
        p.stream_name = recorded.stream_name
        _apply(recorded.event, recorded, p)
    return p


@singledispatch
def _apply(event: Event, recorded: Recorded[Event], p: Progress) -> None:
    """Events that do not change what the thread needs next (and unknown ones) change nothing."""


@_apply.register
def _(event: SessionStarted, recorded: Recorded[Event], p: Progress) -> None:
    p.started = True
    p.callback_url = event.callback_url


@_apply.register
def _(event: UserMessageAdded, recorded: Recorded[Event], p: Progress) -> None:
    p.last_user_position = recorded.position
    p.responses_this_turn = 0
    p.compaction_abandoned = False


@_apply.register
def _(event: SessionTerminationRequested, recorded: Recorded[Event], p: Progress) -> None:
    p.termination = event.reason


@_apply.register
def _(event: TurnCancelled, recorded: Recorded[Event], p: Progress) -> None:
    """Everything the user said so far counts as handled; the step in flight is stopped."""
    p.answered_through = max(p.answered_through, p.last_user_position)
    if p.llm_step is not None and p.llm_step not in p.answered_steps:
        p.cancelled_steps.add(p.llm_step)
    p.llm_step, p.llm_open, p.llm_failure, p.llm_lease = None, False, None, None
    p.llm_truncations, p.responses_this_turn = 0, 0
    p.tool_step, p.tool_calls, p.results_since_response = None, (), False
    p.tool_done, p.tool_attempts, p.tool_leases, p.tool_failures = set(), {}, {}, {}
    p.tool_awaiting, p.tool_approved, p.tool_retry_of, p.tool_retried = {}, set(), {}, set()


@_apply.register
def _(event: SessionCompleted, recorded: Recorded[Event], p: Progress) -> None:
    p.completed = True
    if p.callback_url and event.message:
        p.delivery = Delivery(closing_delivery_step_id(recorded.stream_name), recorded.position)


@_apply.register
def _(event: LLMCallRequested, recorded: Recorded[Event], p: Progress) -> None:
    p.anchors.claimed(event, recorded.position)
    if event.step_id in p.answered_steps or event.step_id in p.cancelled_steps:
        return
    if event.step_id != p.llm_step:
        p.llm_failure, p.llm_truncations = None, 0
    p.llm_step, p.llm_attempt, p.llm_purpose = event.step_id, event.attempt, event.purpose
    p.llm_lease, p.llm_open = aware(event.lease_expires_at), True


@_apply.register
def _(event: LLMResponseReceived, recorded: Recorded[Event], p: Progress) -> None:
    p.answered_steps.add(event.step_id)
    p.answered_through = max(p.answered_through, p.anchors.answered_through(event, recorded))
    if event.step_id in p.cancelled_steps:
        return  # a cancelled turn's answer: in the log, acted on by nobody
    if event.step_id == p.llm_step:
        p.llm_open, p.llm_failure = False, None
    p.responses_this_turn += 1
    p.results_since_response = False
    if p.callback_url and not event.tool_calls:
        p.delivery = Delivery(delivery_step_id(event.step_id), recorded.position)
    p.tool_step = tool_step_id(event.step_id)
    p.tool_calls = event.tool_calls
    p.tool_done, p.tool_attempts, p.tool_leases, p.tool_failures = set(), {}, {}, {}
    p.tool_awaiting, p.tool_approved, p.tool_retry_of, p.tool_retried = {}, set(), {}, set()


@_apply.register
def _(event: LLMCallFailed, recorded: Recorded[Event], p: Progress) -> None:
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
    p.llm_truncations += event.error_kind == "truncated"
    if p.llm_purpose == "compaction" and not event.retryable:
        # A context that cannot be summarised is sent whole rather than ending the turn.
        p.llm_failure, p.compaction_abandoned = None, True


@_apply.register
def _(event: ModelUnavailable, recorded: Recorded[Event], p: Progress) -> None:
    """A failure like any other, and the user is owed the notice it carries."""
    _apply.dispatch(LLMCallFailed)(event, recorded, p)
    if p.callback_url and event.notice and p.llm_failure is event:
        step = f"{event.step_id}/unavailable-{event.attempt}"
        p.delivery = Delivery(delivery_step_id(step), recorded.position)


@_apply.register
def _(event: ContextCompacted, recorded: Recorded[Event], p: Progress) -> None:
    """Ends its step without answering anything: the reply call comes next."""
    p.answered_steps.add(event.step_id)
    if event.step_id == p.llm_step:
        p.llm_open, p.llm_failure = False, None


@_apply.register
def _(event: ToolExecutionRequested, recorded: Recorded[Event], p: Progress) -> None:
    if event.step_id == p.tool_step and event.attempt >= p.tool_attempts.get(event.tool_call_id, 0):
        p.tool_attempts[event.tool_call_id] = event.attempt
        p.tool_leases[event.tool_call_id] = aware(event.lease_expires_at)
        p.tool_retried.discard(event.tool_call_id)  # a granted rerun, claimed


@_apply.register
def _(event: ToolExecutionCompleted, recorded: Recorded[Event], p: Progress) -> None:
    if event.step_id == p.tool_step:
        p.tool_done.add(event.tool_call_id)
        p.results_since_response = True


@_apply.register
def _(event: ToolExecutionFailed, recorded: Recorded[Event], p: Progress) -> None:
    """A failure ends its own attempt; one from an attempt since superseded is late."""
    if event.step_id != p.tool_step or event.attempt < p.tool_attempts.get(event.tool_call_id, 0):
        return
    p.tool_leases.pop(event.tool_call_id, None)
    p.tool_failures[event.tool_call_id] = event
    if not event.retryable:
        p.tool_done.add(event.tool_call_id)
        p.results_since_response = True


@_apply.register
def _(event: ToolExecutionInDoubt, recorded: Recorded[Event], p: Progress) -> None:
    """Final, unless the owner is asked whether to rerun it (the request follows)."""
    if event.step_id == p.tool_step:
        p.tool_leases.pop(event.tool_call_id, None)
        if not event.retry_on_approval:
            p.tool_done.add(event.tool_call_id)
            p.results_since_response = True


@_apply.register
def _(event: ToolApprovalRequested, recorded: Recorded[Event], p: Progress) -> None:
    call = event.tool_call_id
    if event.step_id != p.tool_step or call in p.tool_done:
        return
    if event.retry_of is not None:  # asked again: the earlier approval ran its course
        p.tool_approved.discard(call)
        p.tool_retry_of[call] = event.retry_of
    elif call in p.tool_approved:
        return
    p.tool_awaiting[call] = aware(event.expires_at) if event.expires_at else None
    if p.callback_url:  # the owner is told what waits, once per tool step (and per rerun)
        again = "" if event.retry_of is None else f"-retry-{event.retry_of}"
        p.delivery = Delivery(
            delivery_step_id(f"{event.step_id}/approval{again}"), recorded.position
        )


@_apply.register
def _(event: ToolApprovalGranted, recorded: Recorded[Event], p: Progress) -> None:
    if event.step_id == p.tool_step and event.tool_call_id in p.tool_awaiting:
        del p.tool_awaiting[event.tool_call_id]
        p.tool_approved.add(event.tool_call_id)
        if event.retry_of is not None:
            p.tool_retried.add(event.tool_call_id)


@_apply.register
def _(event: ToolApprovalDenied, recorded: Recorded[Event], p: Progress) -> None:
    """The call's final outcome: the model reads the refusal instead of a result."""
    if event.step_id == p.tool_step and event.tool_call_id not in p.tool_done:
        p.tool_awaiting.pop(event.tool_call_id, None)
        p.tool_done.add(event.tool_call_id)
        p.results_since_response = True


@_apply.register
def _(event: ReplyDeliveryRequested, recorded: Recorded[Event], p: Progress) -> None:
    d = p.delivery
    if d is not None and event.step_id == d.step_id and event.attempt >= d.attempt:
        d.attempt, d.lease, d.retry_at = event.attempt, aware(event.lease_expires_at), None


@_apply.register
def _(event: ReplyDelivered, recorded: Recorded[Event], p: Progress) -> None:
    if p.delivery is not None and event.step_id == p.delivery.step_id:
        p.delivery = None


@_apply.register
def _(event: ReplyDeliveryFailed, recorded: Recorded[Event], p: Progress) -> None:
    """An older reply's delivery is superseded by the newer reply, or already done."""
    d = p.delivery
    if d is None or event.step_id != d.step_id or event.attempt < d.attempt:
        return
    if not event.retryable:
        p.delivery = None  # given up: the reply stays readable through the history API
    else:
        d.lease = None
        d.retry_at = aware(event.retry_at) if event.retry_at else None


def aware(moment: datetime) -> datetime:
    """Times are UTC; a naive one (from an older or foreign writer) is read as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def pending_calls(p: Progress) -> tuple[ToolCall, ...]:
    if p.tool_step is None:
        return ()
    return tuple(call for call in p.tool_calls if call.id not in p.tool_done)
