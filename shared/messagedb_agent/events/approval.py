"""Tool approval: a call the model made that a person must allow before it runs.

The step appends `ToolApprovalRequested` instead of running such a call, and the thread waits.
The thread's owner decides once: `ToolApprovalGranted` lets the call run (exactly once, as any
other call), `ToolApprovalDenied` is the call's final outcome, which the model reads as a
declined result. Both decisions are written under the same message id, derived from the step
and the call, so whichever is written first is the decision and a second one cannot be; an
approval left undecided past its `expires_at` is denied by the step with reason "expired", under
that same id.

A call found in doubt (`ToolExecutionInDoubt.retry_on_approval`) is asked about again, with
`retry_of` naming the attempt in doubt: granted, it runs once more; denied, the doubt stands.
That second question has its own decision id, so it is decided once too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from messagedb_agent.events.base import Event

EXPIRED = "expired"  # the reason of a denial nobody decided


class ToolApprovalRequested(Event):
    """A call of the tool step `step_id` waits for its owner's decision. Not a claim: nothing
    runs while it waits, and the thread needs no step until the decision (or `expires_at`)."""

    type: ClassVar[str] = "ToolApprovalRequested"

    step_id: str
    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any]
    decider: str  # the user who may decide: the thread's owner
    expires_at: datetime | None = None
    retry_of: int | None = None  # the attempt in doubt whose rerun this asks for

    def due(self, written: datetime) -> datetime | None:
        return self.expires_at


class ToolApprovalGranted(Event):
    type: ClassVar[str] = "ToolApprovalGranted"
    asks_for_step: ClassVar[bool] = True  # the call runs now

    step_id: str
    tool_call_id: str
    decided_by: str
    reason: str | None = None
    retry_of: int | None = None


class ToolApprovalDenied(Event):
    """The call's final outcome: it never runs, and the model is told why."""

    type: ClassVar[str] = "ToolApprovalDenied"
    asks_for_step: ClassVar[bool] = True  # the model call that reads the refusal

    step_id: str
    tool_call_id: str
    tool_name: str
    decided_by: str
    reason: str | None = None
    retry_of: int | None = None  # a rerun refused: the call stays in doubt

    @property
    def expired(self) -> bool:
        return self.reason == EXPIRED
