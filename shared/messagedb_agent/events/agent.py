"""LLM steps: the claim that starts one, and the response or failure that ends it."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from messagedb_agent.events.base import Event
from messagedb_agent.events.values import TokenUsage, ToolCall


class LLMCallRequested(Event):
    """Claims an LLM step: written with `expected_version`, so only one worker wins it.

    The context is not copied here (it is a projection of the stream up to
    `context_position`); the lease tells others when a silent claimant may be replaced.
    """

    type: ClassVar[str] = "LLMCallRequested"

    step_id: str
    attempt: int = 1
    model: str
    context_position: int
    message_count: int
    lease_expires_at: datetime
    worker: str | None = None


class LLMResponseReceived(Event):
    type: ClassVar[str] = "LLMResponseReceived"

    step_id: str
    response_text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    model_name: str
    token_usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    latency_ms: float | None = None


class LLMCallFailed(Event):
    type: ClassVar[str] = "LLMCallFailed"

    step_id: str
    error_message: str
    error_kind: str = "unknown"
    retryable: bool = False
    retry_count: int = 1
    retry_at: datetime | None = None
