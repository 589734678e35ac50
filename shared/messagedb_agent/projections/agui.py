"""A thread as an AG-UI event stream: a pure, incremental projection of its events.

Each stored event maps to a group of AG-UI events (often none), all carrying its stream
position. A group's last event has the SSE id `"<position>"`, the ones before it
`"<position>.<index>"`, so a client that reconnects with `Last-Event-ID` resumes exactly where
it stopped, even in the middle of a group (`live/cursor.py` reads the ids back). The mapping is a
function of the events alone (times come from the events, ids from stored ids), so replaying a
thread yields the same stream, ids included, every time.

| stored event                         | AG-UI events                                              |
| ------------------------------------ | --------------------------------------------------------- |
| UserMessageAdded                     | RUN_STARTED if no run is open; TEXT_MESSAGE_* role user   |
| LLMResponseReceived                  | TEXT_MESSAGE_* (id: `answer_message_id`); TOOL_CALL_*     |
| ... of a step a cancel stopped       | CUSTOM late_answer_ignored                                |
| ToolExecutionCompleted               | TOOL_CALL_RESULT                                          |
| ToolExecutionFailed                  | TOOL_CALL_RESULT (error); retryable: CUSTOM retry         |
| ToolExecutionInDoubt                 | TOOL_CALL_RESULT (unknown outcome); asked again: CUSTOM   |
|                                      | in_doubt                                                  |
| ToolApprovalRequested                | CUSTOM approval_requested                                 |
| ToolApprovalGranted                  | CUSTOM approval_decided                                   |
| ToolApprovalDenied                   | TOOL_CALL_RESULT (declined); CUSTOM approval_decided      |
| LLMCallRequested, ToolExecution-     | CUSTOM claim                                              |
|   Requested, ReplyDeliveryRequested  |                                                           |
| LLMCallFailed                        | CUSTOM retry (attempt_failed when not retryable)          |
| ModelUnavailable                     | CUSTOM retry; its notice as an assistant TEXT_MESSAGE_*   |
| ContextCompacted                     | CUSTOM compacted                                          |
| SessionTerminationRequested          | CUSTOM termination_requested                              |
| TurnCancelled                        | TOOL_CALL_RESULT per withdrawn approval; CUSTOM           |
|                                      | turn_cancelled; RUN_FINISHED outcome cancelled            |
| SessionCompleted                     | closing message as TEXT_MESSAGE_*; RUN_ERROR (failure,    |
|                                      | timeout, max_iterations) or RUN_FINISHED                  |
| ErrorOccurred                        | CUSTOM error                                              |
| anything else                        | nothing                                                   |

After any event that leaves the thread waiting (for its user, an approval) or cancelled, the
open run ends: STATE_SNAPSHOT, then RUN_FINISHED with outcome success, interrupt or cancelled.

Why these choices:

- A run is a user turn: AG-UI's run is one execution the client waits on, and ours is the
  work one message sets off. After every event the step protocol itself (`NextStepFold`,
  deciding at the event's own time) says whether the thread has work left: when it waits for
  its user the run ends in success, when it waits for an approval in an `interrupt` outcome
  with one `Interrupt` per waiting call (AG-UI's human-in-the-loop shape: the answer starts a
  new run), after a cancel in `cancelled`. The fold is given the thread as if it had no
  callback URL, because a reply still owed to a webhook is not a turn (next_step says so too):
  a client must not see its run spin while a third party's endpoint is retried.
- Clients check the sequence (`verifyEvents` in the TypeScript client): nothing before the
  first RUN_STARTED, nothing but RUN_STARTED after RUN_FINISHED, nothing at all after
  RUN_ERROR. So every event is shown inside a run. What happens in the conversation while no
  run is open (a decision while another call still waits, a late answer, the thread's end)
  opens a run of its own, which the same rule closes again; the machinery's CUSTOM events
  (claims, retries, compaction) describe a run and are left out when none is open. For the
  same reason the STATE_SNAPSHOT that closes a run comes just before its RUN_FINISHED or
  RUN_ERROR, not after, and nothing follows the SessionCompleted group: the thread is over.
- Run ids come from stored ids (the user message's `turn_id`, else its message id; the id of
  whatever else opened the run), so replays produce identical runs.
- An answer's text message is named by its step and attempt (`answer_message_id`: the step id
  for the first attempt), the id under which that attempt's live text is streamed while the
  model generates, so the final text completes the streamed one instead of appearing twice.
  A retried attempt writes anew under an id of its own: AG-UI cannot take back text, so the
  stream ends a failed attempt's message and a client may drop it (the `retry` CUSTOM names
  it as `message_id`). Its tool calls name the answer's message as their parent.
- Providers may reuse call ids from one response to the next (Gemini's made-up `call_0_x`),
  and AG-UI clients find a call by its id across the whole thread, so a reused id would
  attach arguments and results to an older call. A call keeps its own id the first time it
  is seen, and a later call reusing it gets `"<id>@<position of its response>"`; values
  that name a call carry both (`tool_call_id` for AG-UI, `call_id` as stored, which is what
  the approval endpoint takes).
- Tool results are JSON text (AG-UI's content is text or media parts), written as the model
  reads them (llm_context), so a client shows what the model was told.
- The model's attempts, claims and leases have no AG-UI type: CUSTOM events carry them with
  JSON values only (datetimes as ISO 8601 strings), so any encoder can send them.
- Timestamps are the event's own time in epoch milliseconds, as every AG-UI SDK reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import singledispatch
from typing import Any, Literal

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    Interrupt,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.core import TokenUsage as UsageEntry

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
from messagedb_agent.events.delivery import ReplyDeliveryRequested
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.events.system import ErrorOccurred, SessionCompleted, SessionStarted
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
from messagedb_agent.projections.approvals import Approval, ApprovalsFold, Decision
from messagedb_agent.projections.cost import Cost, CostFold, PriceTable
from messagedb_agent.projections.llm_context import CANCELLED_CALL, IN_DOUBT, declined_text
from messagedb_agent.projections.next_step import NextStep, NextStepFold, StepKind
from messagedb_agent.projections.progress import Progress, aware, fold
from messagedb_agent.projections.session_state import SessionState, project_session_state

__all__ = [
    "APPROVAL_ANSWER",
    "ENDED_UNAPPROVED",
    "AguiFold",
    "Emitted",
    "answer_message_id",
    "project_agui",
]


def answer_message_id(step_id: str, attempt: int) -> str:
    """The AG-UI message of one attempt of a model step: the step id for the first."""
    return step_id if attempt <= 1 else f"{step_id}/{attempt}"


# The thread waits for someone outside it: no run is under way. A call whose approval expired
# waits too, until the step that denies it writes the denial.
_IDLE = frozenset(
    {
        StepKind.WAIT_FOR_USER,
        StepKind.AWAITING_APPROVAL,
        StepKind.EXPIRE_APPROVALS,
        StepKind.DONE,
    }
)
_AWAITING = frozenset({StepKind.AWAITING_APPROVAL, StepKind.EXPIRE_APPROVALS})
_FAILED = frozenset({"failure", "timeout", "max_iterations"})
# The result of a call still waiting for approval when its thread ended (as the transcript says).
ENDED_UNAPPROVED = "the conversation ended before anyone approved this call, so it was not run"
# What an approval interrupt expects back: the body of the approval endpoint.
APPROVAL_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "reject"]},
        "reason": {"type": "string", "maxLength": 500},
    },
    "required": ["decision"],
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Emitted:
    """One AG-UI event, the stream position it came from and its SSE id."""

    sse_id: str
    position: int
    event: BaseEvent


@dataclass(slots=True)
class _Group:
    """What one event shows, before the run around it is decided. A fact belongs to the
    conversation and opens a run if none is open; a note describes a run's machinery and is
    left out when no run is open."""

    time: int  # epoch milliseconds
    shown: list[tuple[BaseEvent, bool]] = field(default_factory=list)
    cancelled: bool = False
    completion: SessionCompleted | None = None

    def fact(self, event: BaseEvent) -> None:
        self.shown.append((event, True))

    def note(self, event: BaseEvent) -> None:
        self.shown.append((event, False))

    @property
    def has_facts(self) -> bool:
        return any(fact for _, fact in self.shown)

    def text(self, message_id: str, role: Literal["user", "assistant"], text: str) -> None:
        """A whole message; no CONTENT for an empty text (older AG-UI SDKs refuse it)."""
        self.fact(TextMessageStartEvent(message_id=message_id, role=role, timestamp=self.time))
        if text:
            self.fact(
                TextMessageContentEvent(message_id=message_id, delta=text, timestamp=self.time)
            )
        self.fact(TextMessageEndEvent(message_id=message_id, timestamp=self.time))

    def custom(self, name: str, value: dict[str, Any], *, fact: bool = False) -> None:
        event = CustomEvent(name=name, value=value, timestamp=self.time)
        self.shown.append((event, fact))

    def result(self, message_id: str, tool_call_id: str, content: Any) -> None:
        self.fact(
            ToolCallResultEvent(
                message_id=message_id,
                tool_call_id=tool_call_id,
                content=_json(content),
                role="tool",
                timestamp=self.time,
            )
        )


@dataclass(slots=True)
class _Seen:
    """What the mapping remembers of the thread: the steps a cancel stopped (read from
    `Progress`, the step protocol's own fold), the AG-UI id of every call shown, and the
    latest tool step's approvals (`projections.approvals`' own fold). An event's handler sees
    the approvals as they were before it, so a cancel can name the calls it withdraws."""

    progress: Progress = field(default_factory=Progress)
    call_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    used_ids: set[str] = field(default_factory=set)
    approvals: ApprovalsFold = field(default_factory=ApprovalsFold)

    def new_call_id(self, tool_step: str, call_id: str, position: int) -> str:
        """The call's own id unless an earlier call of the thread had it already."""
        key = (tool_step, call_id)
        known = self.call_ids.get(key)
        if known is not None:
            return known
        candidate, extra = call_id, 0
        while candidate in self.used_ids:
            candidate = f"{call_id}@{position}" + (f".{extra}" if extra else "")
            extra += 1
        self.used_ids.add(candidate)
        self.call_ids[key] = candidate
        return candidate

    def call_id(self, tool_step: str, call_id: str) -> str:
        return self.call_ids.get((tool_step, call_id), call_id)

    def call_fields(self, tool_step: str, call_id: str) -> dict[str, Any]:
        return {
            "tool_call_id": self.call_id(tool_step, call_id),
            "call_id": call_id,
            "step_id": tool_step,
        }

    @property
    def pending(self) -> list[Approval]:
        return self.approvals.approvals.pending

    def answer_id(self, step_id: str) -> str:
        """The message of the step's latest claimed attempt: the one whose text streamed."""
        progress = self.progress
        attempt = progress.llm_attempt if progress.llm_step == step_id else 1
        return answer_message_id(step_id, attempt)


class AguiFold:
    """The projection, fed one event at a time (`feed`), as a live stream needs it.

    `project_agui(events)` equals the concatenation of `feed` over `events`; a stream served
    from a cursor is the suffix `live.cursor.after_cursor` selects.
    """

    __slots__ = (
        "_cost",
        "_ended",
        "_position",
        "_run",
        "_run_cost",
        "_seen",
        "_state",
        "_steps",
        "_thread_id",
        "_time",
    )

    def __init__(self, thread_id: str, prices: PriceTable | None = None) -> None:
        self._thread_id = thread_id
        self._steps = NextStepFold()
        self._seen = _Seen()
        self._state = SessionState()
        self._cost = CostFold(prices)
        self._position = -1
        self._time: int | None = None
        self._run: str | None = None
        self._run_cost = Cost()  # the usage of the run's model calls
        self._ended = False

    @property
    def run_open(self) -> bool:
        """Whether a run is under way (its steps write events no announcement covers)."""
        return self._run is not None

    @property
    def position(self) -> int:
        """The position of the last event fed, -1 before the first."""
        return self._position

    def feed(self, recorded: Recorded[Event]) -> list[Emitted]:
        """The AG-UI events `recorded` maps to, in order (often none). Events come in stream
        order: one at or before the last position fed is a ValueError, since its group would
        reuse ids a client may already hold."""
        if recorded.position <= self._position:
            raise ValueError(
                f"position {recorded.position} fed after {self._position}: events come in order"
            )
        self._position = recorded.position
        self._time = _millis(recorded.time)
        fold([recorded], self._seen.progress)
        self._steps.feed([_without_callback(recorded)])
        self._state = project_session_state([recorded], self._state)
        priced = self._cost.apply(recorded)
        group = _Group(self._time)
        _show(recorded.event, recorded, self._seen, group)
        self._seen.approvals.apply(recorded)
        if self._ended:
            return []
        decision = self._steps.decide(recorded.time)
        idle = decision.kind in _IDLE
        out: list[BaseEvent] = []
        if self._run is None and (group.has_facts or group.completion or not idle):
            self._run = _run_id(recorded)
            out.append(
                RunStartedEvent(thread_id=self._thread_id, run_id=self._run, timestamp=group.time)
            )
        if self._run is None:
            return []
        out.extend(event for event, _ in group.shown)
        if priced is not None:
            self._run_cost = self._run_cost + Cost((priced,))
        if group.completion is not None:
            out.extend(self._complete(group.completion, group.time))
        elif group.cancelled:
            out.extend(self._finish(group.time, RunFinishedCancelledOutcome()))
        elif idle:
            out.extend(self._finish(group.time, self._outcome(decision)))
        last = len(out) - 1
        position = recorded.position
        return [
            Emitted(str(position) if k == last else f"{position}.{k}", position, event)
            for k, event in enumerate(out)
        ]

    def state_snapshot(self) -> StateSnapshotEvent:
        """The thread's state as of everything fed so far."""
        return StateSnapshotEvent(snapshot=self._snapshot(), timestamp=self._time)

    # -- the end of a run ------------------------------------------------------------------

    def _outcome(
        self, decision: NextStep
    ) -> RunFinishedSuccessOutcome | RunFinishedInterruptOutcome:
        if decision.kind not in _AWAITING:
            return RunFinishedSuccessOutcome()
        interrupts = [_interrupt(self._seen, approval) for approval in self._seen.pending]
        if not interrupts:  # AG-UI wants at least one; the approvals always have them
            return RunFinishedSuccessOutcome()
        return RunFinishedInterruptOutcome(interrupts=interrupts)

    def _finish(
        self,
        time: int,
        outcome: RunFinishedSuccessOutcome
        | RunFinishedInterruptOutcome
        | RunFinishedCancelledOutcome,
    ) -> list[BaseEvent]:
        assert self._run is not None
        finished = RunFinishedEvent(
            thread_id=self._thread_id,
            run_id=self._run,
            outcome=outcome,
            usage=self._usage(),
            timestamp=time,
        )
        snapshot = StateSnapshotEvent(snapshot=self._snapshot(), timestamp=time)
        self._run, self._run_cost = None, Cost()
        return [snapshot, finished]

    def _complete(self, event: SessionCompleted, time: int) -> list[BaseEvent]:
        """The thread is over: its run ends, failed or not, and nothing follows."""
        self._ended = True
        reason = event.completion_reason
        if reason not in _FAILED:
            return self._finish(time, RunFinishedSuccessOutcome())
        failed = RunErrorEvent(
            message=event.message or f"the conversation ended: {reason}",
            code=reason,
            usage=self._usage(),
            timestamp=time,
        )
        snapshot = StateSnapshotEvent(snapshot=self._snapshot(), timestamp=time)
        self._run, self._run_cost = None, Cost()
        return [snapshot, failed]

    def _usage(self) -> list[UsageEntry] | None:
        """The run's model calls, one entry per model (AG-UI's accounting is ours: cached
        input is part of the input, thinking part of the output)."""
        if not self._run_cost.by_model:
            return None
        return [
            UsageEntry(
                model=calls.model,
                input_tokens=calls.input_tokens,
                output_tokens=calls.output_tokens,
                total_tokens=calls.input_tokens + calls.output_tokens,
                cached_input_tokens=calls.cached_input_tokens,
                reasoning_tokens=calls.thinking_tokens,
            )
            for calls in self._run_cost.by_model
        ]

    def _snapshot(self) -> dict[str, Any]:
        state, cost = self._state, self._cost.cost
        usage = state.token_usage
        return {
            "status": state.status,
            "completion_reason": state.completion_reason,
            "version": state.version,
            "counts": {
                "user": state.user_message_count,
                "assistant": state.assistant_message_count,
                "tool_calls": state.tool_call_count,
                "tool_errors": state.tool_error_count,
                "llm_calls": state.llm_call_count,
            },
            "token_usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "thinking_tokens": usage.thinking_tokens,
            },
            "cost": {
                "usd": format(cost.usd, "f"),
                "unpriced_models": list(cost.unpriced_models),
            },
            # nothing waits on an ended thread
            "pending_approvals": []
            if state.completion_reason is not None
            else [_approval_view(self._seen, a) for a in self._seen.pending],
        }


def project_agui(
    thread_id: str, events: Sequence[Recorded[Event]], prices: PriceTable | None = None
) -> list[Emitted]:
    """The whole thread as AG-UI events."""
    agui = AguiFold(thread_id, prices)
    return [emitted for recorded in events for emitted in agui.feed(recorded)]


# -- one handler per event type -------------------------------------------------------------


@singledispatch
def _show(event: Event, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    """Events a client has nothing to see of (and unknown ones) show nothing."""


@_show.register
def _(event: UserMessageAdded, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.text(recorded.id, "user", event.message)


@_show.register
def _(event: LLMResponseReceived, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    tool_step = tool_step_id(event.step_id)
    if event.step_id in seen.progress.cancelled_steps:
        group.custom(
            "late_answer_ignored",
            {
                "step_id": event.step_id,
                "message_id": seen.answer_id(event.step_id),
                "model": event.model_name,
                "text": event.response_text,
                "tool_calls": [call.name for call in event.tool_calls],
            },
            fact=True,
        )
        return
    message_id = seen.answer_id(event.step_id)
    if event.response_text.strip():
        group.text(message_id, "assistant", event.response_text)
    for call in event.tool_calls:
        ident = seen.new_call_id(tool_step, call.id, recorded.position)
        group.fact(
            ToolCallStartEvent(
                tool_call_id=ident,
                tool_call_name=call.name,
                parent_message_id=message_id,
                timestamp=group.time,
            )
        )
        group.fact(
            ToolCallArgsEvent(tool_call_id=ident, delta=_json(call.arguments), timestamp=group.time)
        )
        group.fact(ToolCallEndEvent(tool_call_id=ident, timestamp=group.time))


@_show.register
def _(event: LLMCallRequested, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom(
        "claim",
        {
            "kind": "compaction" if event.purpose == "compaction" else "llm",
            "step_id": event.step_id,
            "attempt": event.attempt,
            "lease_expires_at": _iso(event.lease_expires_at),
            "model": event.model,
        },
    )


@_show.register
def _(event: LLMCallFailed, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom("retry" if event.retryable else "attempt_failed", _llm_failure(event))


@_show.register
def _(event: ModelUnavailable, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    """Waited for however long it takes, so always a retry; its notice is for the user."""
    group.custom("retry", _llm_failure(event) | {"unavailable": True})
    if event.notice:
        group.text(recorded.id, "assistant", event.notice)


@_show.register
def _(event: ContextCompacted, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom(
        "compacted",
        {
            "step_id": event.step_id,
            "summarised_messages": event.summarised_messages,
            "first_kept_position": event.first_kept_position,
            "tokens_before": event.tokens_before,
            "model": event.model_name,
        },
    )


@_show.register
def _(event: ToolExecutionRequested, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom(
        "claim",
        {
            "kind": "tool",
            **seen.call_fields(event.step_id, event.tool_call_id),
            "attempt": event.attempt,
            "lease_expires_at": _iso(event.lease_expires_at),
            "tool": event.tool_name,
        },
    )


@_show.register
def _(event: ToolExecutionCompleted, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.result(recorded.id, seen.call_id(event.step_id, event.tool_call_id), event.result)


@_show.register
def _(event: ToolExecutionFailed, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    if event.retryable:
        group.custom(
            "retry",
            {
                "kind": "tool",
                **seen.call_fields(event.step_id, event.tool_call_id),
                "tool": event.tool_name,
                "attempt": event.attempt,
                "error_kind": event.error_kind,
                "error_message": event.error_message,
                "retry_at": _iso(event.retry_at),
            },
        )
        return
    group.result(
        recorded.id,
        seen.call_id(event.step_id, event.tool_call_id),
        {"error": event.error_message, "kind": event.error_kind},
    )


@_show.register
def _(event: ToolExecutionInDoubt, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    if event.retry_on_approval:  # not final: its owner is asked whether to run it again
        group.custom(
            "in_doubt",
            {
                **seen.call_fields(event.step_id, event.tool_call_id),
                "tool": event.tool_name,
                "attempt": event.attempt,
            },
        )
        return
    group.result(
        recorded.id, seen.call_id(event.step_id, event.tool_call_id), {"in_doubt": IN_DOUBT}
    )


@_show.register
def _(event: ToolApprovalRequested, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom(
        "approval_requested",
        {
            **seen.call_fields(event.step_id, event.tool_call_id),
            "tool": event.tool_name,
            "arguments": event.arguments,
            "expires_at": _iso(event.expires_at),
            "retry_of": event.retry_of,
        },
        fact=True,
    )


@_show.register
def _(event: ToolApprovalGranted, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom("approval_decided", _decision(seen, event, "approved"), fact=True)


@_show.register
def _(event: ToolApprovalDenied, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    """The call's outcome: declined, or (a rerun refused) still in doubt, as the model reads it."""
    decision: Decision = "expired" if event.expired else "declined"
    content = (
        {"declined": declined_text(event)}
        if event.retry_of is None
        else {"in_doubt": IN_DOUBT, "not_run_again": declined_text(event)}
    )
    group.result(recorded.id, seen.call_id(event.step_id, event.tool_call_id), content)
    group.custom("approval_decided", _decision(seen, event, decision), fact=True)


@_show.register
def _(event: ReplyDeliveryRequested, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom(
        "claim",
        {
            "kind": "delivery",
            "step_id": event.step_id,
            "attempt": event.attempt,
            "lease_expires_at": _iso(event.lease_expires_at),
            "reply_position": event.reply_position,
        },
    )


@_show.register
def _(
    event: SessionTerminationRequested, recorded: Recorded[Event], seen: _Seen, group: _Group
) -> None:
    group.custom(
        "termination_requested",
        {"reason": event.reason, "requested_by": event.requested_by},
        fact=True,
    )


@_show.register
def _(event: TurnCancelled, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    """The calls still waiting for approval are withdrawn: each gets the result the model
    reads for it, so no interrupt stays open in the client."""
    for waiting in seen.pending:
        ident = seen.call_id(waiting.step_id, waiting.tool_call_id)
        group.result(f"{recorded.id}/{ident}", ident, {"cancelled": CANCELLED_CALL})
    group.custom(
        "turn_cancelled",
        {"requested_by": event.requested_by, "reason": event.reason, "rollback": event.rollback},
        fact=True,
    )
    group.cancelled = True


@_show.register
def _(event: SessionCompleted, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    """A call nobody approved will never run: it reads as declined, saying why."""
    for waiting in seen.pending:
        ident = seen.call_id(waiting.step_id, waiting.tool_call_id)
        group.result(f"{recorded.id}/{ident}", ident, {"declined": ENDED_UNAPPROVED})
    if event.message:
        group.text(recorded.id, "assistant", event.message)
    group.completion = event


@_show.register
def _(event: ErrorOccurred, recorded: Recorded[Event], seen: _Seen, group: _Group) -> None:
    group.custom(
        "error",
        {
            "error_type": event.error_type,
            "error_message": event.error_message,
            "step_id": event.step_id,
        },
    )


# -- shared by the handlers -------------------------------------------------------------------------


def _decision(
    seen: _Seen, event: ToolApprovalGranted | ToolApprovalDenied, decision: Decision
) -> dict[str, Any]:
    return {
        **seen.call_fields(event.step_id, event.tool_call_id),
        "decision": decision,
        "decided_by": event.decided_by,
        "reason": event.reason,
        "retry_of": event.retry_of,
    }


def _interrupt(seen: _Seen, approval: Approval) -> Interrupt:
    ident = seen.call_id(approval.step_id, approval.tool_call_id)
    if approval.retry_of is None:
        message = f"Allow {approval.tool_name} to run with {_json(approval.arguments)}?"
    else:
        message = (
            f"{approval.tool_name} may or may not have taken effect (attempt "
            f"{approval.retry_of} stopped without a result). Run it again?"
        )
    return Interrupt(
        id=ident,
        reason="tool_approval",
        tool_call_id=ident,
        message=message,
        expires_at=_iso(approval.expires_at),
        response_schema=APPROVAL_ANSWER,
        metadata={
            "step_id": approval.step_id,
            "call_id": approval.tool_call_id,
            "tool": approval.tool_name,
            "arguments": approval.arguments,
            "retry_of": approval.retry_of,
        },
    )


def _approval_view(seen: _Seen, approval: Approval) -> dict[str, Any]:
    return {
        **seen.call_fields(approval.step_id, approval.tool_call_id),
        "tool": approval.tool_name,
        "arguments": approval.arguments,
        "requested_at": _iso(approval.requested_at),
        "expires_at": _iso(approval.expires_at),
        "position": approval.position,
        "retry_of": approval.retry_of,
    }


def _llm_failure(event: LLMCallFailed) -> dict[str, Any]:
    return {
        "kind": "llm",
        "step_id": event.step_id,
        "attempt": event.attempt,
        "message_id": answer_message_id(event.step_id, event.attempt),
        "error_kind": event.error_kind,
        "error_message": event.error_message,
        "retryable": event.retryable,
        "retry_at": _iso(event.retry_at),
    }


def _run_id(recorded: Recorded[Event]) -> str:
    """The run a user message starts is its turn; any other run is named by its first event."""
    if isinstance(recorded.event, UserMessageAdded):
        return recorded.metadata.turn_id or recorded.id
    return recorded.id


def _without_callback(recorded: Recorded[Event]) -> Recorded[Event]:
    """The thread as the run boundaries read it: a reply owed to a webhook is not a turn."""
    event = recorded.event
    if not isinstance(event, SessionStarted) or event.callback_url is None:
        return recorded
    return Recorded(
        recorded.id,
        recorded.stream_name,
        recorded.position,
        recorded.global_position,
        recorded.time,
        event.model_copy(update={"callback_url": None}),
        recorded.metadata,
    )


def _millis(moment: datetime) -> int:
    return (aware(moment) - _EPOCH) // timedelta(milliseconds=1)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else aware(moment).isoformat()


def _json(value: Any) -> str:
    """JSON text of a stored value; anything JSON cannot hold is written as its string."""
    return json.dumps(value, ensure_ascii=False, default=str)
