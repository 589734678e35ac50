"""The API's JSON shapes. The OpenAPI document is generated from these same classes.

Request bodies forbid unknown fields and coerce nothing (a number is not a string), so a
front-end's typo is reported instead of silently ignored. Message content rules (not blank,
not too long) are the engine's (`clean_message`), applied by the handlers, so there is one
definition of an acceptable message; the schema only mirrors them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from messagedb_agent.live.cursor import PATTERN as SSE_CURSOR

# The form of a callback URL; where it may lead (public addresses, https) depends on
# CALLBACK_ALLOW_PRIVATE and is checked by the handler (`channels.outbound`).
CALLBACK_URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#]\S*)?$"
HTTPS_CALLBACK_URL_PATTERN = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#]\S*)?$"
NO_NUL = r"^[^\x00]*$"
MESSAGE_SCHEMA: dict[str, Any] = {
    "minLength": 1,
    "pattern": r"^[^\x00]*\S[^\x00]*$",
    "description": "The user's message; surrounding whitespace is trimmed.",
}
MAX_POSITION = 2**53 - 1


def _utc(moment: datetime) -> datetime:
    """Message DB records UTC without a zone; RFC 3339 (and JavaScript) want it said."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Time = Annotated[datetime, AfterValidator(_utc)]
ThreadStatus = Literal["new", "active", "completed", "failed", "terminated"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Query(BaseModel):
    """Query strings are text, so these coerce ("20" is 20); unknown parameters are refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- requests -------------------------------------------------------------------------------


Multitask = Literal["enqueue", "interrupt", "rollback", "reject"]
MULTITASK_DESCRIPTION = (
    "What a message sent while a turn runs does: `enqueue` (answered after it), `interrupt` "
    "(the turn is cancelled and the message answered with it in context), `rollback` (as "
    "interrupt, without the cancelled turn in context) or `reject` (409 `turn_running`)."
)


class StartThreadRequest(_Body):
    message: str | None = Field(default=None, json_schema_extra=MESSAGE_SCHEMA)
    multitask: Multitask | None = Field(
        default=None,
        description=MULTITASK_DESCRIPTION + " The thread's default; `enqueue` if unset.",
    )
    title: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=CALLBACK_URL_PATTERN,
        description="Where the final reply is pushed: an https URL on a public address "
        "(CALLBACK_ALLOW_PRIVATE also allows http and private addresses, for local work).",
    )


class AddMessageRequest(_Body):
    message: str = Field(json_schema_extra=MESSAGE_SCHEMA)


class ApprovalDecisionRequest(_Body):
    decision: Literal["approve", "reject"] = Field(
        description="`approve` runs the call (once); `reject` tells the model the user declined."
    )
    reason: str | None = Field(
        default=None,
        max_length=500,
        pattern=NO_NUL,
        description="Why; a rejection's reason is shown to the model.",
    )


class CancelTurnRequest(_Body):
    reason: str | None = Field(
        default=None, max_length=500, pattern=NO_NUL, description="Why, for the record."
    )


class TurnCancellation(_Out):
    thread_id: str
    cancelled: bool = Field(description="False when no turn was running: nothing was written.")
    position: int | None = Field(description="Position of the cancellation; null if none.")
    message: str


class EndThreadRequest(_Body):
    """No fields yet; an empty object (or no body) ends the thread."""


class WaitQuery(_Query):
    wait: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds to wait for the assistant's reply before answering without it.",
    )


class MessageQuery(WaitQuery):
    multitask: Multitask | None = Field(
        default=None, description=MULTITASK_DESCRIPTION + " Overrides the thread's default."
    )


class EventsQuery(_Query):
    after: int = Field(
        default=-1, ge=-1, le=MAX_POSITION, description="Only events after this position."
    )
    limit: int = Field(default=100, ge=1, le=500)


class ListQuery(_Query):
    limit: int = Field(default=20, ge=1, le=100, description="Threads per page.")
    cursor: str | None = Field(
        default=None,
        max_length=512,
        description="`next_cursor` of the previous page; opaque. Absent: the first page.",
    )


class ThreadQuery(_Query):
    limit: int | None = Field(
        default=None,
        ge=1,
        le=500,
        description="Transcript messages per page. Absent: every message (after `cursor`).",
    )
    cursor: str | None = Field(
        default=None,
        max_length=512,
        description="`next_cursor` of the previous page, read with the same `order`; opaque.",
    )
    order: Literal["oldest", "newest"] = Field(
        default="oldest", description="`oldest` first (the default) or `newest` first."
    )


# -- responses ------------------------------------------------------------------------------


class Reply(_Out):
    text: str
    position: int


class ThreadCreated(_Out):
    thread_id: str
    position: int = Field(description="Stream position of the last event written.")
    status: ThreadStatus
    reply: Reply | None = Field(
        default=None,
        description="The assistant's reply to the first message, when `wait` was given and "
        "the reply came within it; otherwise null.",
    )


class MessageAccepted(_Out):
    thread_id: str
    position: int = Field(description="Stream position of the user's message.")


class MessageAnswered(_Out):
    thread_id: str
    position: int = Field(description="Stream position of the user's message.")
    reply: Reply


class ThreadEnding(_Out):
    thread_id: str
    position: int = Field(
        description="Position of the termination request (or of the end, if it had ended)."
    )


class TranscriptMessage(_Out):
    role: Literal["user", "assistant"]
    text: str
    position: int
    time: Time


class ToolCallView(_Out):
    id: str
    name: str
    arguments: dict[str, Any]
    status: Literal["pending", "awaiting_approval", "completed", "failed", "declined", "in_doubt"]
    result: Any = None
    error: str | None = None
    attempts: int = 0
    position: int = Field(description="Position of the response that asked for the call.")


class TokenUsageView(_Out):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cached_input_tokens: int = Field(
        default=0, description="The part of input_tokens served from the prompt cache."
    )
    thinking_tokens: int = Field(
        default=0, description="The part of output_tokens the model spent thinking."
    )


class ModelCostView(_Out):
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    thinking_tokens: int = 0
    usd: float
    priced: bool = Field(description="False when no price is configured for the model (usd 0).")


class CostView(_Out):
    usd: float = Field(
        description="Estimated cost of the thread's model calls in US dollars, at the "
        "configured per-model prices (MODEL_PRICES)."
    )
    by_model: list[ModelCostView]
    unpriced_models: list[str] = Field(description="Models used that have no price.")


class MessageCounts(_Out):
    user: int
    assistant: int
    total: int
    tool_calls: int
    tool_errors: int
    llm_calls: int


class PendingApprovalView(_Out):
    tool_call_id: str
    tool: str
    arguments: dict[str, Any]
    requested_at: Time
    expires_at: Time | None = Field(description="When it is declined as expired; null: never.")
    position: int = Field(description="Position of the approval request.")
    retry_of: int | None = Field(
        default=None,
        description="Set when the call is in doubt (its worker stopped after this attempt, "
        "outcome unknown): approving runs it once more, rejecting leaves it in doubt.",
    )


class ApprovalDecided(_Out):
    thread_id: str
    tool_call_id: str
    decision: Literal["approved", "declined"]
    reason: str | None
    position: int = Field(description="Position of the decision.")


class ThreadDetail(_Out):
    thread_id: str
    title: str | None
    status: ThreadStatus
    completion_reason: str | None
    created_at: Time | None
    last_activity_at: Time | None
    version: int = Field(description="Position of the thread's newest event.")
    messages: list[TranscriptMessage]
    tool_calls: list[ToolCallView]
    pending_approvals: list[PendingApprovalView] = Field(
        default_factory=list,
        description="Tool calls waiting for the owner's decision "
        "(`POST /v1/threads/{thread_id}/approvals/{tool_call_id}`).",
    )
    token_usage: TokenUsageView
    cost: CostView
    counts: MessageCounts
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` (with the same `order`) for the next page of messages; "
        "null when no more remain.",
    )


class EventView(_Out):
    id: str
    type: str
    position: int
    time: Time
    data: dict[str, Any]
    metadata: dict[str, Any]


class EventPage(_Out):
    thread_id: str
    events: list[EventView]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null at the end."
    )


class ThreadItem(_Out):
    thread_id: str
    title: str | None
    status: str = Field(
        description="`active`, `completed`, `failed`, `terminated`, or `archived`: idle, its "
        "events moved to the archive; reading it or sending it a message brings it back."
    )
    created_at: Time | None
    last_activity_at: Time
    version: int


class ThreadList(_Out):
    threads: list[ThreadItem]
    next_cursor: str | None


class Health(_Out):
    status: Literal["ok", "unavailable"]
    message_store_version: str | None = None
    server_version: str | None = None
    unavailable: dict[str, str] | None = Field(
        default=None,
        description="What is down and why, by component (`database`), when status is unavailable.",
    )


# -- live replies ---------------------------------------------------------------------------


class StreamQuery(_Query):
    after: str | None = Field(
        default=None,
        pattern=SSE_CURSOR,
        description="Resume after this SSE id (`12`; `12.3` inside position 12's group; "
        "`12~40` after 40 characters of live text following position 12); the "
        "`Last-Event-ID` header does the same and wins. Absent: from the start.",
    )
    format: Literal["agui", "raw"] = Field(
        default="agui",
        description="`agui`: AG-UI protocol events; `raw`: this API's own events as JSON.",
    )
    token: str | None = Field(
        default=None,
        max_length=2048,
        description="A stream token (`POST .../stream-token`), for clients such as "
        "`EventSource` that cannot send an `Authorization` header. Never a bearer token.",
    )


class StreamTokenIssued(_Out):
    token: str
    expires_at: Time = Field(description="Open the stream before this; it may then run on.")
    stream_url: str = Field(description="The stream's path with this token, to open as is.")


class DecisionQuery(_Query):
    at: int | None = Field(
        default=None,
        ge=0,
        le=MAX_POSITION,
        description="The position to decide at (the replay projection). Absent: the head.",
    )


class ToolCallRef(_Out):
    id: str
    name: str


class DecisionView(_Out):
    position: int = Field(description="The last event the decision saw.")
    kind: str = Field(description="What the step protocol does next (`llm_call`, `waiting`...).")
    step_id: str | None
    attempt: int
    not_before: Time | None = Field(description="For a wait: when it ends, if it does.")
    reason: str | None
    tool_calls: list[ToolCallRef]


class ForkRequest(_Body):
    at: int = Field(ge=0, le=MAX_POSITION, description="The last position the fork keeps.")


class ForkCreated(_Out):
    thread_id: str
    forked_from: str
    forked_at_position: int
    position: int = Field(description="Stream position of the fork's last event.")


class Me(_Out):
    user_id: str
    threads: int = Field(description="How many threads the cost covers.")
    cost: CostView


class AguiRunInput(BaseModel):
    """AG-UI's `RunAgentInput`, as far as the router checks it; the handler validates the
    whole of it with the `ag-ui-protocol` package's own model (loaded only on that route, so
    no other request's cold start pays for it)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    thread_id: str = Field(alias="threadId", min_length=1, max_length=200)
    run_id: str = Field(alias="runId", min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(max_length=10_000)
    resume: list[dict[str, Any]] | None = Field(default=None, max_length=100)

    @classmethod
    def documented_model(cls) -> type[BaseModel]:
        from ag_ui.core import RunAgentInput

        return RunAgentInput
