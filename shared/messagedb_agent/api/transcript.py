"""What a front-end shows of a thread: a pure view of its events, in stream order.

The LLM context orders a response after the messages it answered; a person reads what
happened when, so the transcript keeps stream order. Tool calls are keyed by their tool step
and call id, because providers reuse call ids (`c0`, `c1`...) from one response to the next.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from messagedb_agent.api.models import (
    MAX_POSITION,
    CostView,
    EventView,
    MessageCounts,
    ModelCostView,
    PendingApprovalView,
    ThreadDetail,
    TokenUsageView,
    ToolCallView,
    TranscriptMessage,
)
from messagedb_agent.events import (
    Event,
    LLMResponseReceived,
    ModelUnavailable,
    Recorded,
    SessionCompleted,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionInDoubt,
    TurnCancelled,
    UserMessageAdded,
)
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.projections.approvals import project_approvals
from messagedb_agent.projections.cost import Cost, PriceTable, project_cost
from messagedb_agent.projections.llm_context import CANCELLED_CALL, IN_DOUBT, declined_text
from messagedb_agent.projections.session_state import project_session_state
from messagedb_agent.store.message import MessageData

# Metadata a client may see, renamed to the API's snake_case; the rest (trace context, global
# positions, stream names) is plumbing.
_PUBLIC_METADATA = {
    "causationMessagePosition": "causation_position",
    "turnId": "turn_id",
    "stepId": "step_id",
    "schemaVersion": "schema_version",
}
# The error of a call still waiting for approval when its thread ended.
ENDED_UNAPPROVED = "the conversation ended before anyone approved this call, so it was not run"
# Payload fields that describe the machine, not the conversation.
_PRIVATE_DATA = frozenset({"stack_trace", "worker"})


def thread_detail(
    thread_id: str, events: Sequence[Recorded[Event]], prices: PriceTable
) -> ThreadDetail:
    state = project_session_state(events)
    cost = project_cost(events, prices)
    messages: list[TranscriptMessage] = []
    calls: dict[tuple[str, str], dict[str, Any]] = {}
    ended = False
    for recorded in events:
        event = recorded.event
        if isinstance(event, UserMessageAdded):
            messages.append(_message("user", event.message, recorded))
        elif isinstance(event, LLMResponseReceived):
            if event.response_text.strip():
                messages.append(_message("assistant", event.response_text, recorded))
            step = tool_step_id(event.step_id)
            for call in event.tool_calls:
                calls[(step, call.id)] = {
                    "id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": "pending",
                    "position": recorded.position,
                }
        elif isinstance(event, ToolExecutionCompleted | ToolExecutionFailed):
            _tool_outcome(calls, event, recorded.position)
        elif isinstance(event, ToolExecutionInDoubt):
            entry = _tool_status(calls, event.step_id, event.tool_call_id, "in_doubt")
            if entry is not None:
                entry["error"] = IN_DOUBT
        elif isinstance(event, ToolApprovalRequested):
            _tool_status(calls, event.step_id, event.tool_call_id, "awaiting_approval")
        elif isinstance(event, ToolApprovalGranted):
            _tool_status(calls, event.step_id, event.tool_call_id, "pending")
        elif isinstance(event, ToolApprovalDenied):
            rerun_refused = event.retry_of is not None  # the call stays in doubt
            status = "in_doubt" if rerun_refused else "declined"
            entry = _tool_status(calls, event.step_id, event.tool_call_id, status)
            if entry is not None:
                entry["error"] = (
                    f"{IN_DOUBT} ({declined_text(event)})"
                    if rerun_refused
                    else declined_text(event)
                )
        elif isinstance(event, TurnCancelled):  # what waited for approval is withdrawn
            _unapproved(calls, CANCELLED_CALL)
        elif isinstance(event, ModelUnavailable) and event.notice:
            messages.append(_message("assistant", event.notice, recorded))
        elif isinstance(event, SessionCompleted):
            ended = True
            if event.message:
                messages.append(_message("assistant", event.message, recorded))
    if ended:  # nothing waits on an ended thread: a call nobody approved will never run
        _unapproved(calls, ENDED_UNAPPROVED)
    usage = state.token_usage
    return ThreadDetail(
        thread_id=thread_id,
        title=state.title,
        status=state.status,
        completion_reason=state.completion_reason,
        created_at=state.created_at,
        last_activity_at=state.last_activity_at,
        version=state.version,
        messages=messages,
        tool_calls=[ToolCallView(**fields) for fields in calls.values()],
        pending_approvals=[
            PendingApprovalView.model_validate(
                {
                    "tool_call_id": approval.tool_call_id,
                    "tool": approval.tool_name,
                    "arguments": approval.arguments,
                    "requested_at": approval.requested_at,
                    "expires_at": approval.expires_at,
                    "position": approval.position,
                    "retry_of": approval.retry_of,
                }
            )
            for approval in ([] if ended else project_approvals(events).pending)
        ],
        token_usage=TokenUsageView(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            thinking_tokens=usage.thinking_tokens,
        ),
        cost=cost_view(cost),
        counts=MessageCounts(
            user=state.user_message_count,
            assistant=state.assistant_message_count,
            total=state.message_count,
            tool_calls=state.tool_call_count,
            tool_errors=state.tool_error_count,
            llm_calls=state.llm_call_count,
        ),
    )


_CURSOR = re.compile(r"([on]):(0|[1-9][0-9]{0,15})")


class InvalidMessageCursor(ValueError):
    """A `cursor` that no page of this API handed out."""


def message_cursor(order: str, position: int) -> str:
    """Opaque: the order and the position of the last message returned."""
    raw = f"{order[0]}:{position}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_position(cursor: str, order: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidMessageCursor("is not a cursor this API handed out") from None
    match = _CURSOR.fullmatch(raw)
    if match is None or int(match[2]) > MAX_POSITION:
        raise InvalidMessageCursor("is not a cursor this API handed out")
    if match[1] != order[0]:
        raise InvalidMessageCursor(f"belongs to a different `order` than {order!r}")
    return int(match[2])


def page_messages(
    detail: ThreadDetail, *, limit: int | None, cursor: str | None, order: str
) -> ThreadDetail:
    """One page of the transcript's messages; the rest of the thread is unchanged."""
    messages = list(detail.messages)
    if order == "newest":
        messages.reverse()
    if cursor is not None:
        after = _cursor_position(cursor, order)
        if order == "newest":
            messages = [m for m in messages if m.position < after]
        else:
            messages = [m for m in messages if m.position > after]
    next_cursor = None
    if limit is not None and len(messages) > limit:
        messages = messages[:limit]
        next_cursor = message_cursor(order, messages[-1].position)
    return detail.model_copy(update={"messages": messages, "next_cursor": next_cursor})


def cost_view(cost: Cost) -> CostView:
    return CostView(
        usd=_usd(cost.usd),
        by_model=[
            ModelCostView(
                model=item.model,
                calls=item.calls,
                input_tokens=item.input_tokens,
                output_tokens=item.output_tokens,
                cached_input_tokens=item.cached_input_tokens,
                thinking_tokens=item.thinking_tokens,
                usd=_usd(item.usd),
                priced=item.priced,
            )
            for item in cost.by_model
        ],
        unpriced_models=list(cost.unpriced_models),
    )


def _usd(amount: Decimal) -> float:
    """Dollars as a JSON number, to a millionth (a few tokens' worth)."""
    return float(round(amount, 6))


def _message(role: str, text: str, recorded: Recorded[Event]) -> TranscriptMessage:
    return TranscriptMessage.model_validate(
        {"role": role, "text": text, "position": recorded.position, "time": recorded.time}
    )


def _unapproved(calls: dict[tuple[str, str], dict[str, Any]], why: str) -> None:
    """The calls still waiting for approval will never run: they read as declined, saying why."""
    for entry in calls.values():
        if entry["status"] == "awaiting_approval":
            entry.update(status="declined", error=why)


def _tool_status(
    calls: dict[tuple[str, str], dict[str, Any]], step_id: str, call_id: str, status: str
) -> dict[str, Any] | None:
    entry = calls.get((step_id, call_id))
    if entry is not None:
        entry["status"] = status
    return entry


def _tool_outcome(
    calls: dict[tuple[str, str], dict[str, Any]],
    event: ToolExecutionCompleted | ToolExecutionFailed,
    position: int,
) -> None:
    entry = calls.setdefault(
        (event.step_id, event.tool_call_id),
        {
            "id": event.tool_call_id,
            "name": event.tool_name,
            "arguments": {},
            "status": "pending",
            "position": position,
        },
    )
    entry["attempts"] = int(entry.get("attempts", 0)) + 1
    if isinstance(event, ToolExecutionCompleted):
        entry.update(status="completed", result=event.result, error=None)
    else:
        entry["error"] = event.error_message
        if not event.retryable:
            entry["status"] = "failed"


def event_view(message: MessageData) -> EventView:
    """A stored event as clients see it: payload and public metadata, nothing internal."""
    metadata = message.metadata or {}
    return EventView(
        id=message.id,
        type=message.type,
        position=message.position,
        time=message.time,
        data={k: v for k, v in message.data.items() if k not in _PRIVATE_DATA},
        metadata={
            public: metadata[stored]
            for stored, public in _PUBLIC_METADATA.items()
            if stored in metadata
        },
    )
