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
from datetime import datetime
from enum import StrEnum

from messagedb_agent.events.agent import LLMCallFailed, ModelUnavailable
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.ids import llm_step_id
from messagedb_agent.events.values import ToolCall
from messagedb_agent.projections.progress import Progress, aware, fold, pending_calls


class StepKind(StrEnum):
    """The one vocabulary of the step protocol.

    A decision (`NextStep.kind`) is either work to claim and run, or the reason there is none
    now; a step's result (`StepResult.outcome` in the engine) is that same reason, or one of
    the four things only a worker holding a notification can find out.
    """

    # work: claimed, then run by exactly one worker
    LLM_CALL = "llm_call"
    COMPACTION = "compaction"  # an LLM call that summarises the oldest part of the context
    TOOL_EXECUTION = "tool_execution"
    TERMINATION = "termination"
    DELIVER_REPLY = "deliver_reply"
    EXPIRE_APPROVALS = "expire_approvals"  # deny the calls whose approval nobody gave in time
    # no work now, and why
    WAIT_FOR_USER = "waiting"
    AWAITING_APPROVAL = "awaiting_approval"  # a call waits for its owner's decision
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
    {
        StepKind.LLM_CALL,
        StepKind.COMPACTION,
        StepKind.TOOL_EXECUTION,
        StepKind.TERMINATION,
        StepKind.DELIVER_REPLY,
        StepKind.EXPIRE_APPROVALS,
    }
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
    approved: frozenset[str] = frozenset()  # calls of `tool_calls` their owner approved
    # calls of `tool_calls` claimed before whose worker went silent (no outcome recorded)
    silent: frozenset[str] = frozenset()
    # calls of `tool_calls` asked about again after being in doubt, and the attempt in doubt
    retries: tuple[tuple[str, int], ...] = ()
    # a retried model call: how its previous attempt failed, and how many attempts were cut
    # at their output budget (each retry gets twice the budget, up to the ceiling)
    last_failure: LLMCallFailed | None = field(default=None, compare=False)
    truncations: int = 0

    @property
    def paused(self) -> bool:
        """The previous attempt found the model unavailable (see `ModelUnavailable`)."""
        return isinstance(self.last_failure, ModelUnavailable)


class NextStepFold:
    """The same decision, folded incrementally: feed events as they are appended.

    `project_next_step(events, ...)` equals `NextStepFold().feed(events).decide(...)` for every
    split of `events` into successive feeds; the engine keeps one per thread it is driving so
    that each step costs the new events, not the whole history.
    """

    __slots__ = ("_progress",)

    def __init__(self) -> None:
        self._progress = Progress()

    def feed(self, events: Sequence[Recorded[Event]]) -> NextStepFold:
        fold(events, self._progress)
        return self

    def decide(self, now: datetime, policy: Policy | None = None) -> NextStep:
        return _decide(self._progress, aware(now), policy or Policy())

    def pending_tool_calls(self) -> tuple[ToolCall, ...]:
        return pending_calls(self._progress)

    @property
    def may_compact(self) -> bool:
        """The turn's first call is next, and no compaction of this turn has failed for good.

        Compaction waits for a turn's start, so a turn's tool calls and results are never
        split across the boundary, and a model pairing calls with results inside the turn
        sees the turn whole."""
        p = self._progress
        return (
            p.responses_this_turn == 0
            and not p.results_since_response
            and not p.compaction_abandoned
        )


def project_next_step(
    events: Sequence[Recorded[Event]], now: datetime, policy: Policy | None = None
) -> NextStep:
    return NextStepFold().feed(events).decide(now, policy)


def project_turn_running(
    events: Sequence[Recorded[Event]], now: datetime, policy: Policy | None = None
) -> bool:
    """Whether a turn is under way: a step to run, one running or waiting (for a lease, a
    backoff or an approval), as opposed to a thread that waits for its user or has ended. A
    reply owed to the callback URL is not a turn."""
    p = NextStepFold().feed(events)._progress
    return _work(p, aware(now), policy or Policy()).kind not in (
        StepKind.WAIT_FOR_USER,
        StepKind.DONE,
    )


def project_pending_tool_calls(events: Sequence[Recorded[Event]]) -> tuple[ToolCall, ...]:
    """The unresolved calls of the latest response that asked for tools, in the model's order."""
    return NextStepFold().feed(events).pending_tool_calls()


def _decide(p: Progress, now: datetime, policy: Policy) -> NextStep:
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
    idle = work.kind in (StepKind.WAIT_FOR_USER, StepKind.AWAITING_APPROVAL, StepKind.DONE)
    if not idle or d.attempt >= policy.max_delivery_attempts:
        return work
    if leased:
        return NextStep(StepKind.IN_FLIGHT, d.step_id, d.attempt, p.head, not_before=d.lease)
    return NextStep(StepKind.RETRY_LATER, d.step_id, d.attempt, p.head, not_before=d.retry_at)


def _work(p: Progress, now: datetime, policy: Policy) -> NextStep:
    head = p.head
    if p.completed:
        return NextStep(StepKind.DONE, head=head)
    if p.termination is not None:
        return NextStep(StepKind.TERMINATION, head=head, reason=p.termination)
    if not p.started and p.last_user_position < 0:
        return NextStep(StepKind.WAIT_FOR_USER, head=head)

    pending = pending_calls(p)
    if pending:
        return _tool_step(p, pending, now, policy)

    if p.llm_open and p.llm_step is not None:
        if p.llm_lease is not None and now < p.llm_lease:
            return NextStep(
                StepKind.IN_FLIGHT, p.llm_step, p.llm_attempt, head, not_before=p.llm_lease
            )
        paused = isinstance(p.llm_failure, ModelUnavailable)
        if p.llm_attempt >= policy.max_llm_attempts and not paused:
            return _give_up(head, "timeout", "the model did not answer in time")
        return _llm_retry(p)

    failure = p.llm_failure
    if failure is not None and p.llm_step is not None:
        # A model that cannot be used is waited for, however long: only its wait is bounded.
        if not isinstance(failure, ModelUnavailable) and (
            not failure.retryable or failure.attempt >= policy.max_llm_attempts
        ):
            return _give_up(head, "failure", failure.error_message)
        retry_at = aware(failure.retry_at) if failure.retry_at is not None else None
        if retry_at is not None and now < retry_at:
            return NextStep(
                StepKind.RETRY_LATER, p.llm_step, p.llm_attempt, head, not_before=retry_at
            )
        return _llm_retry(p)

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


def _llm_retry(p: Progress) -> NextStep:
    """The next attempt of the open model step, of the same purpose."""
    assert p.llm_step is not None
    kind = StepKind.COMPACTION if p.llm_purpose == "compaction" else StepKind.LLM_CALL
    return NextStep(
        kind,
        p.llm_step,
        p.llm_attempt + 1,
        p.head,
        last_failure=p.llm_failure,
        truncations=p.llm_truncations,
    )


def _tool_step(
    p: Progress, pending: tuple[ToolCall, ...], now: datetime, policy: Policy
) -> NextStep:
    """Calls waiting for approval wait; of the rest, wait while any is leased (running it
    twice would cost twice), else rerun."""
    assert p.tool_step is not None
    runnable = tuple(call for call in pending if call.id not in p.tool_awaiting)
    if not runnable:
        return _awaiting(p, pending, now)
    pending = runnable
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
        aware(failure.retry_at)
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
    approved = frozenset(call.id for call in pending if call.id in p.tool_approved)
    silent = frozenset(
        call.id
        for call in pending
        if (tried := p.tool_attempts.get(call.id, 0))
        and call.id not in p.tool_retried
        and not ((failure := p.tool_failures.get(call.id)) and failure.attempt >= tried)
    )
    return NextStep(
        StepKind.TOOL_EXECUTION,
        p.tool_step,
        attempt + 1,
        p.head,
        tool_calls=pending,
        approved=approved,
        silent=silent,
    )


def _awaiting(p: Progress, waiting: tuple[ToolCall, ...], now: datetime) -> NextStep:
    """Nothing runs until the owner decides; an approval past its expiry is denied."""
    assert p.tool_step is not None
    expired = tuple(
        call for call in waiting if (end := p.tool_awaiting[call.id]) is not None and now >= end
    )
    if expired:
        retries = tuple((c.id, n) for c in expired if (n := p.tool_retry_of.get(c.id)) is not None)
        return NextStep(
            StepKind.EXPIRE_APPROVALS, p.tool_step, 1, p.head, tool_calls=expired, retries=retries
        )
    ends = [end for call in waiting if (end := p.tool_awaiting[call.id]) is not None]
    return NextStep(
        StepKind.AWAITING_APPROVAL,
        p.tool_step,
        head=p.head,
        tool_calls=waiting,
        not_before=min(ends, default=None),
    )


def _give_up(head: int, reason: str, message: str) -> NextStep:
    """End the turn: `reason` is the completion reason, `message` says why for the log."""
    return NextStep(StepKind.TERMINATION, head=head, reason=reason, message=message)
