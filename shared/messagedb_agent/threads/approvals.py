"""Deciding a tool call's approval: the owner's one decision, written exactly once.

Granted and denied are written under one message id (`approval_decision_id`), so two
concurrent decisions cannot both be written: the first is the decision, the same decision
again is answered as it was, a different one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from messagedb_agent.events import Metadata, SessionCompleted, to_message
from messagedb_agent.events.approval import ToolApprovalDenied, ToolApprovalGranted
from messagedb_agent.events.ids import approval_decision_id
from messagedb_agent.notification import Notification
from messagedb_agent.projections.approvals import Approval, project_approvals
from messagedb_agent.store.errors import DuplicateMessageError
from messagedb_agent.threads.commands import Found, resolve_thread
from messagedb_agent.threads.errors import (
    ApprovalDecided,
    ApprovalNotFound,
    MessageRejected,
    ThreadClosed,
)
from messagedb_agent.threads.reading import read_thread

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

MAX_REASON_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Decided:
    thread_id: str
    stream_name: str
    approval: Approval  # as decided
    position: int  # of the decision
    created: bool  # False: this decision had already been made

    @property
    def notification(self) -> Notification:
        return Notification(stream_name=self.stream_name, position=self.position)


def decide_approval(
    store: MessageStore,
    thread: str | Found,
    tool_call_id: str,
    *,
    owner: str,
    approve: bool,
    reason: str | None = None,
    traceparent: str | None = None,
    now: datetime | None = None,
) -> Decided:
    """Approve or decline the call `tool_call_id` of the thread's latest tool step. An
    approval past its expiry is refused as expired, even before the step has recorded that.
    `thread` may be the thread as the caller just found it, which is not read again."""
    if reason is not None and (len(reason) > MAX_REASON_LENGTH or "\x00" in reason):
        raise MessageRejected(
            f"The reason must be at most {MAX_REASON_LENGTH} characters, without NUL."
        )
    thread_id, stream = resolve_thread(store, thread, owner)
    wanted: Literal["approved", "declined"] = "approved" if approve else "declined"
    asked = _asked(store, stream, tool_call_id)
    if asked.decision is None and _ended(store, stream):
        raise ThreadClosed(thread_id)  # nothing would ever run the call
    moment, ends = now or datetime.now(UTC), asked.expires_at
    if ends is not None and ends.tzinfo is None:
        ends = ends.replace(tzinfo=UTC)  # written without a zone: UTC, as the engine reads it
    if asked.decision is None and ends is not None and moment >= ends:
        raise ApprovalDecided(tool_call_id, "expired")  # the step records it when it expires
    if asked.decision is None:
        meta = Metadata(correlation_stream_name=stream, user_id=owner, traceparent=traceparent)
        event = (
            ToolApprovalGranted(
                step_id=asked.step_id,
                tool_call_id=tool_call_id,
                decided_by=owner,
                reason=reason,
                retry_of=asked.retry_of,
            )
            if approve
            else ToolApprovalDenied(
                step_id=asked.step_id,
                tool_call_id=tool_call_id,
                tool_name=asked.tool_name,
                decided_by=owner,
                reason=reason,
                retry_of=asked.retry_of,
            )
        )
        decision_id = approval_decision_id(asked.step_id, tool_call_id, asked.retry_of)
        message = to_message(event, meta, id=decision_id)
        assert message.id is not None
        try:
            position = store.write_message(
                message.id, stream, message.type, message.data, message.metadata
            )
        except DuplicateMessageError:
            asked = _asked(store, stream, tool_call_id)  # decided meanwhile: by whom, how?
        else:
            decided = replace(asked, decision=wanted, reason=reason)
            return Decided(thread_id, stream, decided, position, True)
    if asked.decision != wanted:
        raise ApprovalDecided(tool_call_id, asked.decision or "")
    return Decided(thread_id, stream, asked, _decision_position(store, stream, asked), False)


def _asked(store: MessageStore, stream: str, tool_call_id: str) -> Approval:
    asked = project_approvals(read_thread(store, stream)).by_call.get(tool_call_id)
    if asked is None:
        raise ApprovalNotFound(tool_call_id)
    return asked


def _ended(store: MessageStore, stream: str) -> bool:
    last = store.get_last_stream_message(stream, SessionCompleted.type)
    return last is not None


def _decision_position(store: MessageStore, stream: str, asked: Approval) -> int:
    wanted = approval_decision_id(asked.step_id, asked.tool_call_id, asked.retry_of)
    for message in store.read_stream(stream, asked.position):
        if message.id == wanted:
            return message.position
    return asked.position
