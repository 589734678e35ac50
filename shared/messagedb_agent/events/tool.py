"""Tool steps: one request per call (together they claim the step), then its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from messagedb_agent.events.base import Event


class ToolExecutionRequested(Event):
    type: ClassVar[str] = "ToolExecutionRequested"

    step_id: str
    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any]
    attempt: int = 1
    lease_expires_at: datetime


class ToolExecutionCompleted(Event):
    type: ClassVar[str] = "ToolExecutionCompleted"

    step_id: str
    tool_call_id: str
    tool_name: str
    result: Any = None
    execution_time_ms: float = 0.0


class ToolExecutionFailed(Event):
    type: ClassVar[str] = "ToolExecutionFailed"

    step_id: str
    tool_call_id: str
    tool_name: str
    error_message: str
    error_kind: str = "exception"
    retryable: bool = False
    retry_count: int = 1
    retry_at: datetime | None = None
    execution_time_ms: float = 0.0
