"""The tool calls of a thread waiting for their owner's approval, and how each one was decided.

Only the latest response's calls can wait: a response that calls tools starts a new tool step
(a final answer does not, so the last decisions stay readable after the turn ends). A call's
approval is decided once (`ToolApprovalGranted` or `ToolApprovalDenied`, one message id for
both), so the decision found here is the decision. A call found in doubt may be asked about
again (`retry_of`): that newer question replaces the older, decided one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from messagedb_agent.events.agent import LLMResponseReceived
from messagedb_agent.events.approval import (
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
)
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.events.tool import ToolExecutionCompleted, ToolExecutionFailed
from messagedb_agent.events.user import TurnCancelled

Decision = Literal["approved", "declined", "expired", "withdrawn"]


@dataclass(frozen=True, slots=True)
class Approval:
    step_id: str
    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any]
    decider: str
    requested_at: datetime
    expires_at: datetime | None
    position: int  # of the request
    decision: Decision | None = None
    reason: str | None = None
    retry_of: int | None = None  # asks whether to rerun the call in doubt after this attempt


@dataclass(frozen=True, slots=True)
class Approvals:
    """The latest tool step's approvals, by call id, in the order they were asked for."""

    step_id: str | None
    by_call: dict[str, Approval]

    @property
    def pending(self) -> list[Approval]:
        return [a for a in self.by_call.values() if a.decision is None]


class ApprovalsFold:
    """The approvals, one event at a time, for a view kept current as events arrive (the AG-UI
    stream); `project_approvals(events)` is this fold over `events`."""

    __slots__ = ("_by_call", "_step")

    def __init__(self) -> None:
        self._step: str | None = None
        self._by_call: dict[str, Approval] = {}

    @property
    def approvals(self) -> Approvals:
        """As of the events applied so far; later events do not change it."""
        return Approvals(self._step, dict(self._by_call))

    def apply(self, recorded: Recorded[Event]) -> None:
        event, step, by_call = recorded.event, self._step, self._by_call
        if isinstance(event, LLMResponseReceived) and event.tool_calls:
            self._step, self._by_call = tool_step_id(event.step_id), {}
        elif isinstance(event, ToolApprovalRequested) and event.step_id == step:
            asked = by_call.get(event.tool_call_id)
            if asked is None or (event.retry_of is not None and asked.retry_of != event.retry_of):
                by_call[event.tool_call_id] = Approval(
                    step,
                    event.tool_call_id,
                    event.tool_name,
                    event.arguments,
                    event.decider,
                    recorded.time,
                    event.expires_at,
                    recorded.position,
                    retry_of=event.retry_of,
                )
        elif (
            isinstance(event, ToolExecutionCompleted | ToolExecutionFailed)
            and not (isinstance(event, ToolExecutionFailed) and event.retryable)
            and event.step_id == step
            and (asked := by_call.get(event.tool_call_id)) is not None
            and asked.decision is None
            and asked.retry_of is not None
        ):  # the call in doubt was only slow: its outcome is known, nothing to rerun
            by_call[event.tool_call_id] = replace(asked, decision="withdrawn")
        elif isinstance(event, TurnCancelled):  # what still waited is withdrawn
            for call, waiting in by_call.items():
                if waiting.decision is None:
                    by_call[call] = replace(waiting, decision="withdrawn")
        elif isinstance(event, ToolApprovalGranted | ToolApprovalDenied) and event.step_id == step:
            asked = by_call.get(event.tool_call_id)
            if asked is not None and asked.decision is None and asked.retry_of == event.retry_of:
                by_call[event.tool_call_id] = _decided(asked, event)


def project_approvals(events: Sequence[Recorded[Event]]) -> Approvals:
    fold = ApprovalsFold()
    for recorded in events:
        fold.apply(recorded)
    return fold.approvals


def _decided(asked: Approval, event: ToolApprovalGranted | ToolApprovalDenied) -> Approval:
    decision: Decision
    if isinstance(event, ToolApprovalGranted):
        decision = "approved"
    else:
        decision = "expired" if event.expired else "declined"
    return replace(asked, decision=decision, reason=event.reason)
