"""The event catalogue: every fact a thread (or a user's task list) can record."""

from messagedb_agent.events.agent import (
    ContextCompacted,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    ModelUnavailable,
)
from messagedb_agent.events.approval import (
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
)
from messagedb_agent.events.base import Event, Metadata, Recorded, UnknownEvent
from messagedb_agent.events.delivery import (
    BusyNoticePosted,
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
)
from messagedb_agent.events.index import ThreadOpened
from messagedb_agent.events.mapper import from_message, from_messages, to_message
from messagedb_agent.events.relay import PositionRecorded
from messagedb_agent.events.snapshot import SnapshotRecorded
from messagedb_agent.events.system import ErrorOccurred, SessionCompleted, SessionStarted
from messagedb_agent.events.tasks import (
    TaskAdded,
    TaskCompleted,
    TaskDeleted,
    TaskReopened,
    TaskUpdated,
)
from messagedb_agent.events.tool import (
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionInDoubt,
    ToolExecutionRequested,
)
from messagedb_agent.events.user import (
    SessionTerminationRequested,
    TurnCancelled,
    UserMessageAdded,
)
from messagedb_agent.events.values import TokenUsage, ToolCall

__all__ = [
    "BusyNoticePosted",
    "ContextCompacted",
    "ErrorOccurred",
    "Event",
    "LLMCallFailed",
    "LLMCallRequested",
    "LLMResponseReceived",
    "Metadata",
    "ModelUnavailable",
    "PositionRecorded",
    "Recorded",
    "ReplyDelivered",
    "ReplyDeliveryFailed",
    "ReplyDeliveryRequested",
    "SessionCompleted",
    "SessionStarted",
    "SessionTerminationRequested",
    "SnapshotRecorded",
    "TaskAdded",
    "TaskCompleted",
    "TaskDeleted",
    "TaskReopened",
    "TaskUpdated",
    "ThreadOpened",
    "TokenUsage",
    "ToolApprovalDenied",
    "ToolApprovalGranted",
    "ToolApprovalRequested",
    "ToolCall",
    "ToolExecutionCompleted",
    "ToolExecutionFailed",
    "ToolExecutionInDoubt",
    "ToolExecutionRequested",
    "TurnCancelled",
    "UnknownEvent",
    "UserMessageAdded",
    "from_message",
    "from_messages",
    "to_message",
]
