"""Human-readable views of a thread: the transcript and the raw event stream."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal
from typing import Any

from messagedb_agent.events import (
    ContextCompacted,
    Event,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    ModelUnavailable,
    Recorded,
    SessionCompleted,
    SessionStarted,
    SessionTerminationRequested,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionInDoubt,
    ToolExecutionRequested,
    TurnCancelled,
    UnknownEvent,
    UserMessageAdded,
)
from messagedb_agent.projections.cost import PriceTable, project_cost
from messagedb_agent.projections.session_state import project_session_state


def shorten(value: Any, limit: int = 100) -> str:
    """One line of at most `limit` characters: text as is, anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`1 tool call`, `2 tool calls`: a count with its noun agreeing, as people write it."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _arguments(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())


def asks_approval(name: str, arguments: dict[str, Any], retry_of: int | None = None) -> str:
    if retry_of is not None:
        return f"asks approval to run {name}({_arguments(arguments)}) once more"
    return f"asks approval to run {name}({_arguments(arguments)})"


def decision(event: ToolApprovalGranted | ToolApprovalDenied) -> str:
    """How a call's approval was decided: `approved by alice`, `declined by alice: why`,
    `expired: nobody approved in time`."""
    if isinstance(event, ToolApprovalDenied) and event.expired:
        return "expired: nobody approved in time"
    verb = "approved" if isinstance(event, ToolApprovalGranted) else "declined"
    return f"{verb} by {event.decided_by}" + (f": {shorten(event.reason)}" if event.reason else "")


def transcript(events: Sequence[Recorded[Event]]) -> list[str]:
    """What was said and done, one line per message or tool call."""
    lines: list[str] = []
    calls: dict[str, str] = {}
    cancelled = False  # after a cancellation, until the next message: recorded, not acted on
    for recorded in events:
        event = recorded.event
        if isinstance(event, UserMessageAdded):
            cancelled = False
            lines.append(f"you       › {event.message}")
        elif isinstance(event, TurnCancelled):
            cancelled = True
            why = f": {shorten(event.reason)}" if event.reason else ""
            lines.append(f"   turn   ⏹ cancelled by {event.requested_by}{why}")
        elif isinstance(event, LLMResponseReceived):
            for call in event.tool_calls:
                calls[call.id] = f"{call.name}({_arguments(call.arguments)})"
            if event.response_text.strip():
                first, *rest = event.response_text.strip().splitlines()
                mark = (
                    "assistant ⊘ (after the cancellation, not sent) "
                    if cancelled
                    else "assistant › "
                )
                lines.append(f"{mark}{first}")
                lines += [f"            {line}" for line in rest]
        elif isinstance(event, ToolExecutionCompleted):
            label = calls.get(event.tool_call_id, event.tool_name)
            lines.append(f"   tool   ⚙ {label} → {shorten(event.result)}")
        elif isinstance(event, ToolExecutionFailed) and not event.retryable:
            label = calls.get(event.tool_call_id, event.tool_name)
            lines.append(f"   tool   ✗ {label} → {event.error_message}")
        elif isinstance(event, ToolExecutionInDoubt):
            label = calls.get(event.tool_call_id, event.tool_name)
            after = "unless approved again" if event.retry_on_approval else "not run again"
            lines.append(f"   tool   ? {label} → outcome unknown (its worker stopped); {after}")
        elif isinstance(event, ToolApprovalRequested):
            asked = asks_approval(event.tool_name, event.arguments, event.retry_of)
            lines.append(f"   tool   ⏸ {asked} (call {event.tool_call_id})")
        elif isinstance(event, ToolApprovalGranted):
            label = calls.get(event.tool_call_id, event.tool_call_id)
            lines.append(f"   tool   ✓ {label} {decision(event)}")
        elif isinstance(event, ToolApprovalDenied):
            label = calls.get(event.tool_call_id, event.tool_name)
            lines.append(f"   tool   ✗ {label} {decision(event)}")
        elif isinstance(event, ModelUnavailable):
            if event.notice:
                lines.append(f"assistant › {event.notice}")
            lines.append(f"   model  ⏸ {event.error_kind}: {shorten(event.error_message)}")
        elif isinstance(event, LLMCallFailed):
            lines.append(f"   model  ✗ {event.error_kind}: {shorten(event.error_message)}")
        elif isinstance(event, ContextCompacted):
            lines.append(
                f"   memory ⇢ {counted(event.summarised_messages, 'earlier message')} summarised "
                f"({event.tokens_before} tokens of context)"
            )
        elif isinstance(event, SessionCompleted):
            lines.append(f"   ended  ({event.completion_reason}) {event.message or ''}".rstrip())
    return lines


def event_line(recorded: Recorded[Event]) -> str:
    event = recorded.event
    summary: str
    if isinstance(event, SessionStarted):
        summary = f"owner={event.owner}" + (
            f" forked_from={event.forked_from}" if event.forked_from else ""
        )
    elif isinstance(event, UserMessageAdded):
        summary = shorten(event.message, 60)
    elif isinstance(event, LLMCallRequested):
        summary = f"claim step {event.step_id[:8]} attempt {event.attempt} model={event.model}"
        if event.purpose != "reply":
            summary += f" ({event.purpose})"
    elif isinstance(event, LLMResponseReceived):
        calls = ", ".join(c.name for c in event.tool_calls)
        summary = f"step {event.step_id[:8]} " + (
            f"tool calls: {calls}" if calls else shorten(event.response_text, 50)
        )
    elif isinstance(event, ToolExecutionRequested):
        summary = f"claim step {event.step_id[:8]} {event.tool_name}({shorten(_arguments(event.arguments), 40)})"
    elif isinstance(event, ToolExecutionCompleted):
        summary = (
            f"{event.tool_name} → {shorten(event.result, 50)} ({event.execution_time_ms:.1f} ms)"
        )
    elif isinstance(event, ToolExecutionFailed):
        summary = f"{event.tool_name} ✗ {event.error_kind}: {shorten(event.error_message, 50)}"
    elif isinstance(event, ToolApprovalRequested):
        asked = f"{event.tool_name}({shorten(_arguments(event.arguments), 40)})"
        summary = f"step {event.step_id[:8]} {event.tool_call_id} asks approval to run {asked}"
        if event.retry_of is not None:
            summary += f" again after attempt {event.retry_of}"
        if event.expires_at is not None:
            summary += f" until {event.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    elif isinstance(event, ToolApprovalGranted):
        summary = f"step {event.step_id[:8]} {event.tool_call_id} {decision(event)}"
    elif isinstance(event, ToolApprovalDenied):
        summary = (
            f"step {event.step_id[:8]} {event.tool_call_id} {event.tool_name} {decision(event)}"
        )
    elif isinstance(event, ModelUnavailable):
        summary = f"attempt {event.attempt} {event.error_kind}: waits until {event.retry_at}"
    elif isinstance(event, LLMCallFailed):
        summary = f"attempt {event.attempt} {event.error_kind}, retryable={event.retryable}"
    elif isinstance(event, ContextCompacted):
        summary = (
            f"{counted(event.summarised_messages, 'message')} before #{event.first_kept_position}"
        )
    elif isinstance(event, SessionTerminationRequested):
        summary = event.reason
    elif isinstance(event, ToolExecutionInDoubt):
        summary = (
            f"step {event.step_id[:8]} {event.tool_name} attempt {event.attempt}: outcome unknown"
        )
    elif isinstance(event, TurnCancelled):
        summary = f"by {event.requested_by}" + (
            f": {shorten(event.reason, 50)}" if event.reason else ""
        )
    elif isinstance(event, SessionCompleted):
        summary = event.completion_reason
    elif isinstance(event, UnknownEvent):
        summary = shorten(event.data, 60)
    else:
        summary = shorten(event.model_dump(mode="json"), 60)
    return f"  #{recorded.position:<4} {recorded.type:<28} {summary}"


def summary_line(events: Sequence[Recorded[Event]], prices: PriceTable) -> str:
    state = project_session_state(events)
    cost = project_cost(events, prices)
    users, assistants = state.user_message_count, state.assistant_message_count
    messages = "message" if users == assistants == 1 else "messages"  # the noun is shared
    return (
        f"status {state.status} · {users} user / {assistants} assistant {messages} · "
        f"{counted(state.tool_call_count, 'tool call')} · "
        f"{counted(state.llm_call_count, 'model call')} · "
        f"{counted(state.token_usage.total_tokens, 'token')} · "
        f"{format_usd(cost.usd)}{' + unpriced' if cost.unpriced_models else ''} · "
        f"{counted(state.version + 1, 'event')}"
    )


def format_usd(amount: Decimal) -> str:
    """Dollars as people read them: cents when there are some, else the first digits."""
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount < Decimal("0.000001"):
        return "<$0.000001"
    return f"${amount:.6f}".rstrip("0").rstrip(".")
