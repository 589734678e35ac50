"""The route table: each operation's method, path, inputs, answers and guards, in one place.

The router dispatches from it and the OpenAPI document is generated from it, so the two
cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel
from werkzeug.routing import Map, Rule

from messagedb_agent.api import handlers, models

Handler = Callable[[handlers.Context, handlers.Call], handlers.Answer]

# Error statuses shared by groups of operations.
AUTHENTICATED = (401, 500, 503)
WRITES = (400, 413, 415, 422, 429)
ON_A_THREAD = (404,)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # OpenAPI template: /v1/threads/{thread_id}
    operation_id: str
    summary: str
    handler: Handler
    answers: dict[int, tuple[type[BaseModel] | None, str]]
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = False
    query: type[BaseModel] | None = None
    authenticated: bool = True
    description: str = ""
    # Server-Sent Events: also opened with a stream token (`?token=`) instead of a header
    streams: bool = False

    @property
    def rate_limited(self) -> bool:
        """Writes are limited: they are what starts paid model calls."""
        return self.authenticated and self.method == "POST"

    @property
    def idempotent(self) -> bool:
        return self.method == "POST" and self.authenticated

    @property
    def rule_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    @property
    def rule(self) -> str:
        return re.sub(r"\{(\w+)\}", r"<\1>", self.path)


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/threads",
        "startThread",
        "Start a conversation, optionally with its first message",
        handlers.start_thread,
        {
            201: (
                models.ThreadCreated,
                "The thread exists; with `wait`, `reply` holds the answer if it came in time.",
            )
        },
        errors=(*WRITES, *AUTHENTICATED),
        body=models.StartThreadRequest,
        query=models.WaitQuery,
    ),
    Route(
        "GET",
        "/v1/threads",
        "listThreads",
        "The caller's conversations, newest activity first",
        handlers.list_threads,
        {200: (models.ThreadList, "One page of threads.")},
        errors=(400, *AUTHENTICATED),
        query=models.ListQuery,
        description="`next_cursor` is null on the last page; otherwise pass it as `cursor` "
        "(with any `limit`) for the next page.",
    ),
    Route(
        "POST",
        "/v1/threads/{thread_id}/messages",
        "addMessage",
        "Send a message; with `wait`, answer with the assistant's reply",
        handlers.add_message,
        {
            200: (models.MessageAnswered, "The assistant replied within `wait` seconds."),
            202: (models.MessageAccepted, "The message is queued; the reply comes later."),
        },
        errors=(*WRITES, *ON_A_THREAD, 409, *AUTHENTICATED),
        body=models.AddMessageRequest,
        body_required=True,
        query=models.MessageQuery,
    ),
    Route(
        "GET",
        "/v1/threads/{thread_id}",
        "getThread",
        "Transcript, status, tool calls and usage of one conversation",
        handlers.get_thread,
        {200: (models.ThreadDetail, "The thread, with one page of its messages.")},
        errors=(400, *ON_A_THREAD, *AUTHENTICATED),
        query=models.ThreadQuery,
        description="With no query parameters every message is returned, oldest first. "
        "`limit` pages the messages; `next_cursor` continues from the last one returned.",
    ),
    Route(
        "GET",
        "/v1/threads/{thread_id}/events",
        "listEvents",
        "The thread's raw events after a position",
        handlers.list_events,
        {200: (models.EventPage, "Events in stream order.")},
        errors=(400, *ON_A_THREAD, *AUTHENTICATED),
        query=models.EventsQuery,
    ),
    Route(
        "POST",
        "/v1/threads/{thread_id}/approvals/{tool_call_id}",
        "decideApproval",
        "Approve or reject a tool call waiting for the owner's approval",
        handlers.decide_approval,
        {200: (models.ApprovalDecided, "The decision (the first one, if this repeats it).")},
        errors=(*WRITES, *ON_A_THREAD, 409, *AUTHENTICATED),
        body=models.ApprovalDecisionRequest,
        body_required=True,
        description="A call's approval is decided once: repeating the same decision answers "
        "it again, a different one is `409 approval_decided`. An approved call runs exactly "
        "once; a rejected one is reported to the model as declined, with the reason.",
    ),
    Route(
        "POST",
        "/v1/threads/{thread_id}/cancel",
        "cancelTurn",
        "Stop the turn the conversation is running",
        handlers.cancel_turn,
        {200: (models.TurnCancellation, "Cancelled, or (`cancelled: false`) nothing was running.")},
        errors=(*WRITES, *ON_A_THREAD, *AUTHENTICATED),
        body=models.CancelTurnRequest,
        description="No step of the turn starts after this, on any instance; a model call or "
        "tool already running finishes and is recorded, but nothing acts on it; calls waiting "
        "for approval are withdrawn. The conversation then waits for the next message.",
    ),
    Route(
        "POST",
        "/v1/threads/{thread_id}/end",
        "endThread",
        "End a conversation",
        handlers.end_thread,
        {
            200: (models.ThreadEnding, "The thread had already ended."),
            202: (models.ThreadEnding, "The thread will be closed by its next step."),
        },
        errors=(*WRITES, *ON_A_THREAD, *AUTHENTICATED),
        body=models.EndThreadRequest,
        description="The thread stays readable; new messages to it are refused once it ends.",
    ),
    Route(
        "POST",
        "/v1/threads/{thread_id}/stream-token",
        "issueStreamToken",
        "A short-lived token to open the thread's stream without an Authorization header",
        handlers.issue_stream_token,
        {200: (models.StreamTokenIssued, "Valid for one minute, for this thread only.")},
        errors=(*WRITES, *ON_A_THREAD, *AUTHENTICATED),
        description="For browsers' `EventSource`, which cannot send headers: the token goes "
        "in the stream's URL instead of the bearer token, which must never be in a URL.",
    ),
    Route(
        "GET",
        "/v1/threads/{thread_id}/stream",
        "streamThread",
        "The thread's events as Server-Sent Events, then live (AG-UI or raw)",
        handlers.stream_thread,
        {200: (None, "`text/event-stream`: each `id:` is a resume cursor.")},
        errors=(400, *ON_A_THREAD, 429, *AUTHENTICATED),
        query=models.StreamQuery,
        streams=True,
        description="Every event from the cursor on (`Last-Event-ID` or `after`), then each "
        "one as it is appended; in the AG-UI format, the model's text also arrives as it is "
        "generated. Reconnecting with the last id received resumes exactly: nothing lost, "
        "nothing repeated. Comments keep idle connections open; the stream ends after "
        "STREAM_MAX_SECONDS, and the client resumes. Open streams per user are limited "
        "(STREAMS_PER_USER, per instance): over it, `429`.",
    ),
    Route(
        "POST",
        "/v1/ag-ui",
        "runAgUi",
        "Run a turn from AG-UI's run input, streamed as AG-UI events until the run ends",
        handlers.agui_run,
        {200: (None, "`text/event-stream` of AG-UI events, ending with the run.")},
        errors=(*WRITES, *ON_A_THREAD, 409, *AUTHENTICATED),
        body=models.AguiRunInput,
        body_required=True,
        streams=True,
        description="For AG-UI clients (e.g. CopilotKit's HttpAgent): `threadId` is one of "
        "your threads (an unknown one is created for you), the last `user` message is appended "
        "once per message `id`, and `resume` answers the run's interrupts (tool approvals, "
        '`payload: {"decision": "approve" | "reject", "reason"?}`). The rest of `messages` is '
        "ignored: the thread's own log is the history. Client-side `tools` are not called.",
    ),
    Route(
        "GET",
        "/v1/threads/{thread_id}/decision",
        "decideNextStep",
        "What the step protocol does next, as of a position (the replay projection)",
        handlers.decide_next_step,
        {200: (models.DecisionView, "The decision over the events up to `at`.")},
        errors=(400, *ON_A_THREAD, *AUTHENTICATED),
        query=models.DecisionQuery,
    ),
    Route(
        "POST",
        "/v1/threads/{thread_id}/fork",
        "forkThread",
        "A new thread with this one's history up to a position",
        handlers.fork_thread,
        {201: (models.ForkCreated, "The new thread.")},
        errors=(*WRITES, *ON_A_THREAD, *AUTHENTICATED),
        body=models.ForkRequest,
        body_required=True,
    ),
    Route(
        "GET",
        "/v1/me",
        "me",
        "The signed-in user and what their threads cost",
        handlers.me,
        {200: (models.Me, "The user's id and cost.")},
        errors=AUTHENTICATED,
    ),
    Route(
        "GET",
        "/healthz",
        "health",
        "Whether the API can reach Message DB",
        handlers.health,
        {
            200: (models.Health, "Message DB answers."),
            503: (models.Health, "Message DB does not answer."),
        },
        errors=(500,),
        authenticated=False,
    ),
    Route(
        "GET",
        "/openapi.json",
        "openapi",
        "This document",
        handlers.openapi,
        {200: (None, "The OpenAPI 3.1 document.")},
        errors=(500,),
        authenticated=False,
    ),
)


def url_map(routes: tuple[Route, ...]) -> Map:
    return Map(
        [Rule(r.rule, endpoint=i, methods=[r.method]) for i, r in enumerate(routes)],
        strict_slashes=False,
        merge_slashes=False,
    )
