"""A thread's vital signs: owner, status, counts, token usage, last activity.

Token usage is the sum of every response's, cached input and thinking tokens included, so
the thread's summary can say how much of its prompt the cache served and how much of its
output was reasoning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import singledispatch
from typing import Literal

from messagedb_agent.events.agent import ContextCompacted, LLMCallFailed, LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.system import ErrorOccurred, SessionCompleted, SessionStarted
from messagedb_agent.events.tool import ToolExecutionCompleted, ToolExecutionFailed
from messagedb_agent.events.user import UserMessageAdded
from messagedb_agent.events.values import TokenUsage

Status = Literal["new", "active", "completed", "failed", "terminated"]


@dataclass(frozen=True, slots=True)
class SessionState:
    thread_id: str | None = None
    stream_name: str | None = None
    owner: str | None = None
    title: str | None = None
    callback_url: str | None = None
    model: str | None = None
    status: Status = "new"
    completion_reason: str | None = None
    version: int = -1
    user_message_count: int = 0
    assistant_message_count: int = 0
    tool_call_count: int = 0
    tool_error_count: int = 0
    llm_call_count: int = 0
    llm_failure_count: int = 0
    error_count: int = 0
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    created_at: datetime | None = None
    last_activity_at: datetime | None = None
    last_user_message: str | None = None
    last_assistant_message: str | None = None

    @property
    def message_count(self) -> int:
        return self.user_message_count + self.assistant_message_count

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "active")


@dataclass(slots=True)
class _Acc:
    """Mutable only while one projection runs: folding stays linear in the stream length."""

    fields: dict[str, object]
    tokens: TokenUsage = field(default_factory=TokenUsage)


@singledispatch
def _apply(event: Event, acc: _Acc) -> None:
    """Events that do not change the vital signs are skipped."""


@_apply.register
def _(event: SessionStarted, acc: _Acc) -> None:
    acc.fields.update(
        thread_id=event.thread_id,
        owner=event.owner,
        title=event.title,
        callback_url=event.callback_url,
        model=event.model,
        status="active",
    )


def _inc(acc: _Acc, name: str, by: int = 1) -> None:
    acc.fields[name] = int(acc.fields[name]) + by  # type: ignore[call-overload]


@_apply.register
def _(event: UserMessageAdded, acc: _Acc) -> None:
    _inc(acc, "user_message_count")
    acc.fields["last_user_message"] = event.message
    if not acc.fields["title"]:
        acc.fields["title"] = event.message[:80]


@_apply.register
def _(event: ContextCompacted, acc: _Acc) -> None:
    """A compaction is a model call the thread paid for, though nobody reads its answer."""
    _inc(acc, "llm_call_count")
    acc.tokens = acc.tokens + event.token_usage


@_apply.register
def _(event: LLMResponseReceived, acc: _Acc) -> None:
    _inc(acc, "llm_call_count")
    acc.tokens = acc.tokens + event.token_usage
    if event.response_text.strip():
        _inc(acc, "assistant_message_count")
        acc.fields["last_assistant_message"] = event.response_text


@_apply.register
def _(event: LLMCallFailed, acc: _Acc) -> None:
    _inc(acc, "llm_failure_count")


@_apply.register
def _(event: ToolExecutionCompleted, acc: _Acc) -> None:
    _inc(acc, "tool_call_count")


@_apply.register
def _(event: ToolExecutionFailed, acc: _Acc) -> None:
    _inc(acc, "tool_error_count")
    if not event.retryable:
        _inc(acc, "tool_call_count")


@_apply.register
def _(event: ErrorOccurred, acc: _Acc) -> None:
    _inc(acc, "error_count")


_STATUS_BY_REASON: dict[str, Status] = {
    "success": "completed",
    "terminated": "terminated",
    "failure": "failed",
    "timeout": "failed",
    "max_iterations": "failed",
}


@_apply.register
def _(event: SessionCompleted, acc: _Acc) -> None:
    acc.fields["status"] = _STATUS_BY_REASON.get(event.completion_reason, "completed")
    acc.fields["completion_reason"] = event.completion_reason


def project_session_state(
    events: Sequence[Recorded[Event]], start: SessionState | None = None
) -> SessionState:
    """Fold `events` onto `start` (an earlier result, e.g. from a snapshot) or a new thread."""
    base = start or SessionState()
    fields = {name: getattr(base, name) for name in SessionState.__dataclass_fields__}
    acc = _Acc(fields, base.token_usage)
    for recorded in events:
        _apply(recorded.event, acc)
    if events:
        last = events[-1]
        fields["version"] = last.position
        fields["stream_name"] = last.stream_name
        fields["last_activity_at"] = last.time
        fields["created_at"] = fields["created_at"] or events[0].time
    fields["token_usage"] = acc.tokens
    return SessionState(**fields)
