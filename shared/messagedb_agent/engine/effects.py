"""The events a step writes, built from its decision and what its effect returned. Pure.

Nothing here reads the clock, the store or the network: the step protocol (`step.py`) reads
`now` once, runs the one effect, and hands the outcome here to become events. Every event is
paired with the message id it is written under, derived from the step id, so a step that runs
twice (a redelivery, a takeover after a lease) writes each result once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import orjson

from messagedb_agent.channels.callback import DeliveryError
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import ids
from messagedb_agent.events.agent import (
    ContextCompacted,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    ModelUnavailable,
)
from messagedb_agent.events.approval import (
    EXPIRED,
    ToolApprovalDenied,
    ToolApprovalRequested,
)
from messagedb_agent.events.base import Event, Metadata, Recorded
from messagedb_agent.events.delivery import (
    BusyNoticePosted,
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
)
from messagedb_agent.events.system import SessionCompleted
from messagedb_agent.events.tool import (
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionInDoubt,
    ToolExecutionRequested,
)
from messagedb_agent.events.user import UserMessageAdded
from messagedb_agent.events.values import ToolCall
from messagedb_agent.llm import catalogue, errors
from messagedb_agent.llm.prompts import COMPACTION_PROMPT, DEFAULT_SYSTEM_PROMPT
from messagedb_agent.llm.types import LLMConfig, LLMError, LLMResponse
from messagedb_agent.projections.anchors import reply_text
from messagedb_agent.projections.llm_context import CompactionPlan
from messagedb_agent.projections.next_step import NextStep, Policy, StepKind
from messagedb_agent.tools.context import ToolOutcome

log = logging.getLogger(__name__)

Pending = tuple[Event, str]  # an event and the message id it is to be written under

FRIENDLY_FAILURE = (
    "Sorry, I ran into a problem and couldn't finish this. Please try again in a moment."
)
FRIENDLY_LIMIT = (
    "I stopped here because this request took more steps than I'm allowed in one turn. "
    "Could you break it into smaller requests?"
)
UNAVAILABLE_NOTICE = (
    "I can't reach my language model right now, so I can't answer yet. "
    "Your message is saved, and I'll reply as soon as I'm available again."
)
# What a turn ends with when the model can never give a usable answer to it.
FRIENDLY_ENDINGS = {
    errors.SAFETY: "I can't help with that request. Could you rephrase it, or ask something else?",
    errors.EMPTY: "Sorry, I couldn't come up with an answer to that. Could you rephrase it?",
    errors.TRUNCATED: "My answer ran longer than I'm allowed to write. Could you ask for "
    "something shorter, or split the request?",
}
# Kinds that are nobody's mistake: retried, and when they persist, waited out like an
# operator's fault instead of ending the turn.
_TRANSIENT = frozenset({errors.RATE_LIMITED, errors.SERVER, errors.UNAVAILABLE, errors.TIMEOUT})
_RETRY_AT_ONCE = datetime.min.replace(tzinfo=UTC)


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
    unavailable_retry: timedelta = timedelta(minutes=5)
    max_output_tokens: int = 8192
    max_output_tokens_ceiling: int = 32_768
    # context tokens above which a turn's first call is preceded by a compaction; None: never
    context_budget: int | None = None
    tool_result_max_chars: int = 20_000
    # events between snapshots of a thread's view (see `snapshot.py`); None: no snapshots
    snapshot_interval: int | None = 100
    # names (fnmatch patterns) of the tools whose calls wait for their owner's approval, and
    # how long an approval may wait before it is denied as expired (None: for ever)
    tools_requiring_approval: tuple[str, ...] = ()
    # how long a turn may run before a chat platform's conversation is told it is at work
    # (`BusyNoticePosted`); None: never
    busy_notice_after: timedelta | None = None
    approval_ttl: timedelta | None = None
    # names (fnmatch patterns) of the tools a call of which may run again when its worker went
    # silent; any other such call is reported in doubt. The runtime names the tools declared
    # idempotent (and MCP tools hinted so); an engine built by hand reruns every tool.
    idempotent_tools: tuple[str, ...] = ("*",)

    def requires_approval(self, tool_name: str) -> bool:
        return any(fnmatchcase(tool_name, pattern) for pattern in self.tools_requiring_approval)

    def idempotent(self, tool_name: str) -> bool:
        return any(fnmatchcase(tool_name, pattern) for pattern in self.idempotent_tools)

    def backoff(self, attempt: int) -> timedelta:
        """Exponential: base, 2 × base, 4 × base... capped at `backoff_max`."""
        return min(self.backoff_base * (1 << (attempt - 1)), self.backoff_max)

    def output_budget(self, truncations: int) -> int:
        """Twice the budget for each attempt cut at it, up to the ceiling."""
        ceiling = max(self.max_output_tokens, self.max_output_tokens_ceiling)
        return min(self.max_output_tokens << min(truncations, 20), ceiling)


def message_id(step_id: str, part: str) -> str:
    return ids.message_id(step_id, part)


# -- claims: written with expected_version at the head the decision was made on -----------------


def claims(
    decision: NextStep, view: ThreadView, now: datetime, config: EngineConfig, worker: str
) -> list[Pending]:
    """The events that claim `decision`'s step (for a termination, the ending itself)."""
    step_id, attempt = decision.step_id or "", decision.attempt
    if decision.kind is StepKind.TERMINATION:
        return [(completion(decision), ids.message_id(view.stream_name, "completed"))]
    if decision.kind in (StepKind.LLM_CALL, StepKind.COMPACTION):
        compaction = decision.kind is StepKind.COMPACTION
        request = LLMCallRequested(
            step_id=step_id,
            attempt=attempt,
            model=model_for(view, config, now),
            context_position=decision.head,
            context_messages=view.context_messages,
            lease_expires_at=now + config.llm_lease,
            worker=worker,
            purpose="compaction" if compaction else "reply",
            max_output_tokens=config.output_budget(decision.truncations),
        )
        return [(request, ids.message_id(step_id, f"claim-{attempt}"))]
    if decision.kind is StepKind.DELIVER_REPLY:
        assert view.started is not None
        assert view.started.callback_url
        delivery = ReplyDeliveryRequested(
            step_id=step_id,
            reply_position=decision.reply_position,
            callback_url=view.started.callback_url,
            attempt=attempt,
            lease_expires_at=now + config.delivery_lease,
        )
        return [(delivery, ids.message_id(step_id, f"request-{attempt}"))]
    if decision.kind is StepKind.EXPIRE_APPROVALS:
        retries = dict(decision.retries)
        return [
            (
                ToolApprovalDenied(
                    step_id=step_id,
                    tool_call_id=call.id,
                    tool_name=call.name,
                    decided_by=EXPIRED_BY,
                    reason=EXPIRED,
                    retry_of=retries.get(call.id),
                ),
                ids.approval_decision_id(step_id, call.id, retries.get(call.id)),
            )
            for call in decision.tool_calls
        ]
    lease = now + config.tool_lease
    expires = now + config.approval_ttl if config.approval_ttl is not None else None
    written: list[Pending] = []
    for call in decision.tool_calls:
        if in_doubt(decision, call, config):
            ask = config.requires_approval(call.name)  # its owner may have it run again
            doubt = ToolExecutionInDoubt(
                step_id=step_id,
                tool_call_id=call.id,
                tool_name=call.name,
                attempt=attempt - 1,
                retry_on_approval=ask,
            )
            if not ask:  # a call has one final outcome, whichever it is: the result's id
                written.append((doubt, ids.message_id(step_id, f"result-{call.id}")))
                continue
            written.append((doubt, ids.message_id(step_id, f"doubt-{call.id}-{attempt - 1}")))
            written.append(_ask(step_id, call, view.owner, expires, retry_of=attempt - 1))
            continue
        if awaits_approval(decision, call, config):
            written.append(_ask(step_id, call, view.owner, expires))
            continue
        claim = ToolExecutionRequested(
            step_id=step_id,
            tool_call_id=call.id,
            tool_name=call.name,
            arguments=call.arguments,
            attempt=attempt,
            lease_expires_at=lease,
        )
        written.append((claim, ids.message_id(step_id, f"request-{call.id}-{attempt}")))
    return written


def _ask(
    step_id: str,
    call: ToolCall,
    owner: str,
    expires: datetime | None,
    retry_of: int | None = None,
) -> Pending:
    """The owner's approval asked for the call (or for its rerun, after attempt `retry_of`)."""
    request = ToolApprovalRequested(
        step_id=step_id,
        tool_call_id=call.id,
        tool_name=call.name,
        arguments=call.arguments,
        decider=owner,
        expires_at=expires,
        retry_of=retry_of,
    )
    again = "" if retry_of is None else f"-retry-{retry_of}"
    return request, ids.message_id(step_id, f"approval-{call.id}{again}")


EXPIRED_BY = "expiry"  # who decided an approval nobody decided in time


def in_doubt(decision: NextStep, call: ToolCall, config: EngineConfig) -> bool:
    """Whether `call` was claimed by a worker that went silent, and its tool is not one that
    may run twice: it may have taken effect, so it is reported, not run again."""
    return call.id in decision.silent and not config.idempotent(call.name)


def awaits_approval(decision: NextStep, call: ToolCall, config: EngineConfig) -> bool:
    """Whether `call` must wait for its owner instead of running: its tool requires approval
    and the owner has not given it yet."""
    return call.id not in decision.approved and config.requires_approval(call.name)


def model_for(view: ThreadView, config: EngineConfig, now: datetime) -> str:
    """The thread's own model while it answers, else the deployment's: a thread pinned to a
    model since retired moves on instead of waiting for a model that will never return."""
    pinned = view.started.model if view.started else None
    if pinned and catalogue.retired_problem(pinned, now.date()) is None:
        return pinned
    return config.model


def completion(decision: NextStep) -> SessionCompleted:
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


# -- the model ------------------------------------------------------------------------------------


def llm_config(view: ThreadView, config: EngineConfig) -> LLMConfig:
    """The model and budget the claim named (a thread may pin its own model), and the
    thread's system prompt (a compaction has its own)."""
    claim = view.head.event
    assert isinstance(claim, LLMCallRequested)
    budget = claim.max_output_tokens or config.max_output_tokens
    last_chance = claim.attempt >= config.policy.max_llm_attempts
    compaction = claim.purpose == "compaction"
    return LLMConfig(
        model=claim.model,
        system_prompt=COMPACTION_PROMPT
        if compaction
        else view.system_prompt or config.system_prompt,
        max_output_tokens=budget,
        timeout_seconds=config.llm_timeout_seconds,
        accept_truncated=last_chance or budget >= config.max_output_tokens_ceiling,
    )


def llm_answered(step_id: str, response: LLMResponse, latency_ms: float) -> list[Pending]:
    result = LLMResponseReceived(
        step_id=step_id,
        response_text=response.text,
        tool_calls=_unique_call_ids(response, step_id),
        model_name=response.model_name,
        token_usage=response.token_usage,
        finish_reason=response.finish_reason,
        latency_ms=round(latency_ms, 3),
        thought_signatures=response.thought_signatures,
    )
    return [(result, message_id(step_id, "response"))]


def compacted(
    step_id: str, plan: CompactionPlan, response: LLMResponse, latency_ms: float
) -> list[Pending]:
    event = ContextCompacted(
        step_id=step_id,
        summary=response.text.strip(),
        first_kept_position=plan.first_kept_position,
        summarised_messages=len(plan.summarised),
        tokens_before=plan.tokens_before,
        model_name=response.model_name,
        token_usage=response.token_usage,
        latency_ms=round(latency_ms, 3),
    )
    return [(event, message_id(step_id, "compacted"))]


def llm_failed(
    decision: NextStep, error: LLMError, now: datetime, config: EngineConfig, model: str
) -> list[Pending]:
    """The failed attempt, and what the thread does about it.

    - An operator's fault (credentials, permissions, the model's name, a quota), or a
      transient fault that outlasted every attempt: the thread waits (`ModelUnavailable`),
      and the user is told once.
    - A fault a new attempt may fix: retried after a backoff (a cut reply with more room).
    - Anything else is final for this turn, never for the thread: the turn ends with a
      friendly answer (an empty reply gets one more try first).
    """
    step_id, attempt, policy = decision.step_id or "", decision.attempt, config.policy
    exhausted = attempt >= policy.max_llm_attempts
    if errors.is_operator_fault(error) or (
        error.kind in _TRANSIENT and (exhausted or decision.paused)
    ):
        log.error(
            "model unavailable, the thread waits for a fix: %s (%s, attempt %s)",
            error,
            error.kind,
            attempt,
        )
        paused = ModelUnavailable(
            step_id=step_id,
            error_message=str(error),
            error_kind=error.kind,
            retryable=True,
            attempt=attempt,
            retry_at=now + config.unavailable_retry,
            notice=None if decision.paused else UNAVAILABLE_NOTICE,
        )
        return [(paused, message_id(step_id, f"failure-{attempt}"))]
    again = decision.last_failure is not None and decision.last_failure.error_kind == error.kind
    retryable = error.retryable and not exhausted and not (error.kind == errors.EMPTY and again)
    log.warning("llm call failed: %s (%s, attempt %s)", error, error.kind, attempt)
    failure = LLMCallFailed(
        step_id=step_id,
        error_message=str(error),
        error_kind=error.kind,
        retryable=retryable,
        attempt=attempt,
        retry_at=now + config.backoff(attempt) if retryable else None,
    )
    written: list[Pending] = [(failure, message_id(step_id, f"failure-{attempt}"))]
    if not retryable and decision.kind is StepKind.LLM_CALL:
        ending = LLMResponseReceived(
            step_id=step_id,
            response_text=FRIENDLY_ENDINGS.get(error.kind, FRIENDLY_FAILURE),
            model_name=model,
            finish_reason=error.kind,
        )
        written.append((ending, message_id(step_id, "response")))
    return written


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


# -- tools ----------------------------------------------------------------------------------------


def tool_ran(
    decision: NextStep, call: ToolCall, outcome: ToolOutcome, now: datetime, config: EngineConfig
) -> Pending:
    """A completed call's result, or its failure: final, or to retry after a backoff."""
    step_id, attempt = decision.step_id or "", decision.attempt
    elapsed = round(outcome.execution_time_ms, 3)
    if outcome.ok:
        completed = ToolExecutionCompleted(
            step_id=step_id,
            tool_call_id=call.id,
            tool_name=call.name,
            result=outcome.result,
            execution_time_ms=elapsed,
        )
        return completed, message_id(step_id, f"result-{call.id}")
    retryable = outcome.retryable and attempt < config.policy.max_tool_attempts
    failed = ToolExecutionFailed(
        step_id=step_id,
        tool_call_id=call.id,
        tool_name=call.name,
        error_message=outcome.error_message or "the tool failed",
        error_kind=outcome.error_kind or "exception",
        retryable=retryable,
        attempt=attempt,
        retry_at=now + config.backoff(attempt) if retryable else None,
        execution_time_ms=elapsed,
    )
    # a final failure takes the result's id: a call has one final outcome, whichever it is
    part = f"failure-{call.id}-{attempt}" if retryable else f"result-{call.id}"
    return failed, message_id(step_id, part)


# -- reply delivery -------------------------------------------------------------------------------


def reply_body(
    view: ThreadView, claim: ReplyDeliveryRequested, reply: Recorded[Event] | None = None
) -> bytes:
    """What the callback URL receives: the reply, where it is in the thread, which attempt.

    `reply` is the event at `claim.reply_position`, when the view does not hold it (a view
    restored from a snapshot holds only the events after it)."""
    if reply is None:
        reply = view.event_at(claim.reply_position)
    started = view.started
    payload: dict[str, Any] = {
        "type": "reply",
        "thread_id": started.thread_id if started else None,
        "position": claim.reply_position,
        "reply": {
            "text": reply_text(reply) if reply is not None else "",
            "final": reply is not None and isinstance(reply.event, SessionCompleted),
        },
        "delivery_id": claim.step_id,
        "attempt": claim.attempt,
    }
    notice = open_notice(view, claim.step_id)
    if notice is not None:  # a chat platform's "Working on it…", to be replaced by this
        payload["replaces"] = notice
    if reply is not None and isinstance(reply.event, ToolApprovalRequested):
        # every call of the step that waits, asked for in the one batch that ends at `reply`
        # (a rerun's question is asked in its own batch)
        step, again = reply.event.step_id, reply.event.retry_of
        payload["type"] = "approval_requested"
        payload["approvals"] = [
            {
                "tool_call_id": asked.tool_call_id,
                "tool": asked.tool_name,
                "arguments": asked.arguments,
                "expires_at": asked.expires_at.isoformat() if asked.expires_at else None,
                "retry_of": asked.retry_of,
            }
            for e in view.events
            if isinstance(asked := e.event, ToolApprovalRequested)
            and asked.step_id == step
            and asked.retry_of == again
        ]
    return orjson.dumps(payload)


def delivered(decision: NextStep, status: int) -> list[Pending]:
    step_id = decision.step_id or ""
    event = ReplyDelivered(step_id=step_id, attempt=decision.attempt, status_code=status)
    return [(event, message_id(step_id, "delivered"))]


def delivery_failed(
    decision: NextStep, error: DeliveryError, now: datetime, config: EngineConfig
) -> list[Pending]:
    step_id, attempt = decision.step_id or "", decision.attempt
    retryable = error.retryable and attempt < config.policy.max_delivery_attempts
    log.warning("reply delivery failed: %s (attempt %s)", error, attempt)
    failure = ReplyDeliveryFailed(
        step_id=step_id,
        attempt=attempt,
        error_message=str(error),
        status_code=error.status_code,
        retryable=retryable,
        retry_at=now + config.backoff(attempt) if retryable else None,
        parts_delivered=error.delivered,
    )
    return [(failure, message_id(step_id, f"failed-{attempt}"))]


def open_notice(view: ThreadView, delivery_step: str | None = None) -> str | None:
    """The reference of the busy notice the turn's next delivery replaces: one posted since
    the person's last message and before any other delivery (`delivery_step`'s own claims, its
    earlier attempts, do not count)."""
    for recorded in reversed(view.events):
        event = recorded.event
        if isinstance(event, BusyNoticePosted):
            return event.reference
        if isinstance(event, UserMessageAdded):
            return None
        if isinstance(event, ReplyDeliveryRequested) and event.step_id != delivery_step:
            return None
    return None


def busy_notice_due(view: ThreadView, now: datetime, config: EngineConfig) -> float | None:
    """Seconds from now at which a long turn's busy notice is due (0: at once), or None: none
    is wanted (off, no turn, one already posted)."""
    if config.busy_notice_after is None or open_notice(view) is not None:
        return None
    asked = next(
        (r.time for r in reversed(view.events) if isinstance(r.event, UserMessageAdded)), None
    )
    if asked is None:
        return None
    if asked.tzinfo is None:
        asked = asked.replace(tzinfo=UTC)
    return max(0.0, (asked + config.busy_notice_after - now).total_seconds())


def busy_noticed(step_id: str, reference: str) -> Pending:
    return BusyNoticePosted(step_id=step_id, reference=reference), message_id(step_id, "busy")


def parts_delivered(view: ThreadView, step_id: str) -> int:
    """How many parts of the delivery's reply earlier attempts got to the platform."""
    return max(
        (
            failed.parts_delivered
            for e in view.events
            if isinstance(failed := e.event, ReplyDeliveryFailed) and failed.step_id == step_id
        ),
        default=0,
    )


# -- reading back what a step wrote ---------------------------------------------------------------


def turn_reply(written: list[Pending]) -> str | None:
    """The reply that ends the turn, if these events hold one: a final response, or the end."""
    for event, _ in written:
        if isinstance(event, LLMResponseReceived) and not event.tool_calls:
            return event.response_text
        if isinstance(event, SessionCompleted):
            return event.message
    return None


def backoff_until(results: list[Pending]) -> datetime | None:
    """When a failure among the results may be retried; a failure ends a chain of steps."""
    for event, _ in results:
        if isinstance(event, LLMCallFailed | ToolExecutionFailed) and event.retryable:
            return event.retry_at or _RETRY_AT_ONCE
        if isinstance(event, LLMCallFailed):
            return _RETRY_AT_ONCE
    return None


def metadata(head: Recorded[Event]) -> Metadata:
    """What the events written after `head` carry: its correlation, and the step they serve."""
    step_id = getattr(head.event, "step_id", None)
    return Metadata(step_id=step_id if isinstance(step_id, str) else None).follow(head)


def recorded(
    head: Recorded[Event],
    pairs: list[Pending],
    first: int,
    now: datetime,
    meta: Metadata | None = None,
) -> list[Recorded[Event]]:
    """`pairs` as they read once written after `head` from position `first` (`meta` is
    `metadata(head)`, when the caller has it already)."""
    meta = meta or metadata(head)
    return [
        Recorded(id_, head.stream_name, first + i, -1, now, event, meta)
        for i, (event, id_) in enumerate(pairs)
    ]
