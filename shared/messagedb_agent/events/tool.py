"""Tool steps: one request per call (together they claim the step), then its outcome."""

from __future__ import annotations

from typing import Any, ClassVar

from messagedb_agent.events.base import Claim, Event, Failure
from messagedb_agent.events.mapper import upcaster


class ToolExecutionRequested(Claim):
    type: ClassVar[str] = "ToolExecutionRequested"

    step_id: str
    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any]
    attempt: int = 1


class ToolExecutionCompleted(Event):
    type: ClassVar[str] = "ToolExecutionCompleted"
    asks_for_step: ClassVar[bool] = True  # the next call, or the model call that reads results

    step_id: str
    tool_call_id: str
    tool_name: str
    result: Any = None
    execution_time_ms: float = 0.0


class ToolExecutionFailed(Failure):
    type: ClassVar[str] = "ToolExecutionFailed"
    schema_version: ClassVar[int] = 2

    step_id: str
    tool_call_id: str
    tool_name: str
    error_message: str
    error_kind: str = "exception"
    attempt: int = 1  # the attempt that failed
    execution_time_ms: float = 0.0


class ToolExecutionInDoubt(Event):
    """A call's final outcome when its worker went silent (the lease ran out, no outcome was
    recorded) and its tool is not idempotent: it may or may not have taken effect, so it is
    never run again, and the model is told not to assume either.

    Unless its owner says otherwise: a call of a tool that requires approval is not final in
    doubt (`retry_on_approval`). Its owner is asked again (a `ToolApprovalRequested` with
    `retry_of`, written with it): granted, the call runs once more; denied or expired, this
    is its outcome after all."""

    type: ClassVar[str] = "ToolExecutionInDoubt"
    asks_for_step: ClassVar[bool] = True  # the model call that reads it

    step_id: str
    tool_call_id: str
    tool_name: str
    attempt: int  # the attempt whose worker went silent
    retry_on_approval: bool = False


@upcaster("ToolExecutionFailed", 1)
def _retry_count_was_the_attempt(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["attempt"] = data.pop("retry_count", 1)
    return data
