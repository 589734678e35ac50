"""One fully populated example of every event type the package declares, and stored rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from messagedb_agent.events import (
    BusyNoticePosted,
    ContextCompacted,
    ErrorOccurred,
    Event,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    Metadata,
    ModelUnavailable,
    PositionRecorded,
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
    SessionCompleted,
    SessionStarted,
    SessionTerminationRequested,
    SnapshotRecorded,
    TaskAdded,
    TaskCompleted,
    TaskDeleted,
    TaskReopened,
    TaskUpdated,
    ThreadOpened,
    TokenUsage,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCall,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionInDoubt,
    ToolExecutionRequested,
    TurnCancelled,
    UserMessageAdded,
)
from messagedb_agent.events.index import ThreadArchived
from messagedb_agent.store.message import MessageData, NewMessage

STREAM = "thread-3f2b8c1a-5d4e-4f6a-8b7c-9d0e1f2a3b4c"
WHEN = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
LEASE = WHEN + timedelta(minutes=2)
CALL = ToolCall(id="call-1", name="add_task", arguments={"title": "buy milk", "tags": ["home"]})

SAMPLES: tuple[Event, ...] = (
    SessionStarted(
        thread_id="3f2b8c1a-5d4e-4f6a-8b7c-9d0e1f2a3b4c",
        owner="ada",
        title="Groceries",
        callback_url="https://chat.example.com/hooks/ada",
        model="claude-sonnet",
        system_prompt="Be brief.",
        forked_from="0a1b2c3d",
        forked_at_position=7,
        initial_context={"locale": "en-GB", "nested": {"n": [1, 2.5, None, True]}},
    ),
    UserMessageAdded(message="Remind me to buy milk ✓ — thanks", timestamp=WHEN),
    LLMCallRequested(
        step_id="step-1",
        attempt=2,
        model="claude-sonnet",
        context_position=4,
        context_messages=3,
        lease_expires_at=LEASE,
        worker="host:1234",
        purpose="compaction",
        max_output_tokens=16384,
    ),
    LLMResponseReceived(
        step_id="step-1",
        response_text="Adding it.",
        tool_calls=(CALL, ToolCall(id="call-2", name="list_tasks")),
        model_name="claude-sonnet-20250101",
        token_usage=TokenUsage(input_tokens=120, output_tokens=34),
        finish_reason="tool_use",
        latency_ms=812.5,
        thought_signatures={"call-1": "c2lnbmF0dXJl"},
    ),
    LLMCallFailed(
        step_id="step-1",
        error_message="overloaded",
        error_kind="rate_limited",
        retryable=True,
        attempt=2,
        retry_at=WHEN.astimezone(timezone(timedelta(hours=2))),
    ),
    ModelUnavailable(
        step_id="step-1",
        error_message="403 PERMISSION_DENIED: aiplatform.endpoints.predict denied",
        error_kind="auth",
        retryable=True,
        attempt=4,
        retry_at=WHEN + timedelta(minutes=5),
        notice="The assistant is unavailable right now; it will answer as soon as it can.",
    ),
    ContextCompacted(
        step_id="step-2",
        summary="The user keeps a shopping list: milk (done), eggs.",
        first_kept_position=40,
        summarised_messages=37,
        tokens_before=12_500,
        model_name="gemini-2.5-flash",
        token_usage=TokenUsage(input_tokens=9_000, output_tokens=120, cached_input_tokens=4_000),
        latency_ms=950.0,
    ),
    ToolExecutionRequested(
        step_id="tools-1",
        tool_call_id="call-1",
        tool_name="add_task",
        arguments={"title": "buy milk"},
        attempt=2,
        lease_expires_at=LEASE,
    ),
    TurnCancelled(requested_by="alice", reason="changed my mind", rollback=True),
    ToolExecutionInDoubt(
        step_id="tools-1", tool_call_id="call-1", tool_name="send_email", attempt=1
    ),
    ToolApprovalRequested(
        step_id="tools-1",
        tool_call_id="call-2",
        tool_name="delete_task",
        arguments={"task_id": 2},
        decider="alice",
        expires_at=LEASE,
    ),
    ToolApprovalGranted(
        step_id="tools-1", tool_call_id="call-2", decided_by="alice", reason="go ahead"
    ),
    ToolApprovalDenied(
        step_id="tools-1",
        tool_call_id="call-3",
        tool_name="delete_task",
        decided_by="expiry",
        reason="expired",
    ),
    ToolExecutionCompleted(
        step_id="tools-1",
        tool_call_id="call-1",
        tool_name="add_task",
        result={"task_id": 3, "title": "buy milk", "done": False},
        execution_time_ms=4.25,
    ),
    ToolExecutionFailed(
        step_id="tools-1",
        tool_call_id="call-2",
        tool_name="list_tasks",
        error_message="the database is unreachable",
        error_kind="unavailable",
        retryable=True,
        attempt=1,
        execution_time_ms=1.5,
    ),
    ReplyDeliveryRequested(
        step_id="delivery-1",
        reply_position=7,
        callback_url="https://chat.example/hook",
        attempt=2,
        lease_expires_at=datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC),
    ),
    ReplyDelivered(step_id="delivery-1", attempt=2, status_code=204),
    BusyNoticePosted(step_id="llm-3", reference="1700000000.000100"),
    ReplyDeliveryFailed(
        step_id="delivery-1",
        attempt=1,
        error_message="the callback URL answered 503",
        status_code=503,
        retryable=True,
        retry_at=datetime(2026, 1, 1, 12, 0, 2, tzinfo=UTC),
        parts_delivered=2,
    ),
    SessionTerminationRequested(reason="user_requested", requested_by="ada"),
    SessionCompleted(completion_reason="max_iterations", message="I stopped here."),
    ErrorOccurred(
        error_type="RelayError",
        error_message="publish failed",
        stack_trace="Traceback ...",
        step_id="step-1",
    ),
    TaskAdded(task_id=3, title="buy milk", description="semi-skimmed"),
    TaskUpdated(task_id=3, title="buy oat milk", description=None),
    TaskCompleted(task_id=3),
    TaskReopened(task_id=3),
    TaskDeleted(task_id=3),
    ThreadOpened(
        thread_id="3f2b8c1a-5d4e-4f6a-8b7c-9d0e1f2a3b4c", stream_name=STREAM, title="Milk"
    ),
    ThreadArchived(
        thread_id="3f2b8c1a-5d4e-4f6a-8b7c-9d0e1f2a3b4c",
        stream_name=STREAM,
        url=f"gs://archive/threads/{STREAM}/0000000007-0123456789abcdef.jsonl",
        events=8,
        sha256="0123456789abcdef" * 4,
        last_position=7,
        last_id="5b8f3c1e-0d2a-4c6b-9e7f-1a2b3c4d5e6f",
        title="Milk",
        status="active",
        created_at=datetime(2026, 1, 2, 3, 4, 5),
        last_activity_at=datetime(2026, 1, 2, 3, 5, 6),
    ),
    PositionRecorded(position=1005, watch={STREAM: LEASE}),
    SnapshotRecorded(
        entity_version=42,
        head_id="5b8f3c1e-0d2a-4c6b-9e7f-1a2b3c4d5e6f",
        fingerprint="0123abcd/20000",
        entity_data={"started": None, "progress": {"$": "tuple", "v": [1, 2]}},
    ),
)

METADATA = Metadata(
    correlation_stream_name=STREAM,
    causation_message_stream_name=STREAM,
    causation_message_position=3,
    causation_message_global_position=1042,
    user_id="ada",
    turn_id="turn-7",
    step_id="step-1",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)


def stored(
    message: NewMessage,
    position: int = 5,
    *,
    as_text: bool = True,
    stream_name: str = STREAM,
) -> MessageData:
    """The row Message DB would return for `message` (payloads as JSON text, like the driver)."""
    data: dict[str, Any] | str = orjson.dumps(message.data).decode() if as_text else message.data
    metadata: dict[str, Any] | str | None = message.metadata
    if as_text and metadata is not None:
        metadata = orjson.dumps(metadata).decode()
    return MessageData(
        id=message.id or f"00000000-0000-4000-8000-{position:012d}",
        stream_name=stream_name,
        type=message.type,
        position=position,
        global_position=1000 + position,
        data=data,
        metadata=metadata,
        time=WHEN,
    )
