"""One function per operation: validated input in, an answer out; no HTTP in sight.

Handlers call the engine's session commands and read models. A write is a function of the
store handed to `Context.write`, answering from what it wrote; that runs it (once per
idempotency key, in one transaction with its recorded answer) and publishes its notification
(the fast path to the step function). Refusals are raised as `ApiError` or the engine's
`ThreadError`s; the router turns both into error bodies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel

from messagedb_agent.api import models
from messagedb_agent.api.errors import ApiError, ErrorItem, invalid_request
from messagedb_agent.api.replies import wait_for_reply
from messagedb_agent.api.transcript import (
    InvalidMessageCursor,
    event_view,
    page_messages,
    thread_detail,
)
from messagedb_agent.channels import outbound
from messagedb_agent.events import SessionCompleted
from messagedb_agent.live.cursor import START, Cursor, parse_cursor
from messagedb_agent.observability.tracing import current_traceparent
from messagedb_agent.projections.cost import PriceTable
from messagedb_agent.settings import Settings
from messagedb_agent.store.errors import StoreError
from messagedb_agent.threads import approvals
from messagedb_agent.threads import commands as session
from messagedb_agent.threads import index as threads
from messagedb_agent.threads.archive import ArchiveCorrupted, ArchiveError
from messagedb_agent.threads.commands import Appended
from messagedb_agent.threads.errors import ThreadNotFound
from messagedb_agent.threads.reading import read_thread

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore
    from messagedb_agent.store.signals import StreamSignals

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler may use; the store is opened on first use, so `/healthz` can fail soft."""

    store: Callable[[], MessageStore]
    publish: Callable[[Appended], None]
    settings: Settings
    prices: PriceTable  # MODEL_PRICES over the defaults, priced once per process
    clock: Callable[[], datetime]
    openapi: Callable[[], dict[str, Any]]
    # Runs a write once per idempotency key, its answer recorded in the write's own
    # transaction (api/idempotency.py), then publishes what it appended: every POST writes
    # through it.
    write: Callable[[Call, Write], Written]
    signals: Callable[[], StreamSignals | None] = lambda: None  # wake-ups for `?wait=`


@dataclass(frozen=True, slots=True)
class Call:
    user: str
    params: dict[str, str] = field(default_factory=dict)
    query: BaseModel | None = None
    body: BaseModel | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None  # with a key: what a replay must match
    resume_from: str | None = None  # a stream's `Last-Event-ID`

    def body_as(self, model: type[M]) -> M:
        return _typed(self.body, model)

    def query_as(self, model: type[M]) -> M:
        return _typed(self.query, model)


def _typed(value: BaseModel | None, model: type[M]) -> M:
    if value is None:
        return model()
    assert isinstance(value, model)
    return value


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: BaseModel | dict[str, Any]
    replayed: bool = False  # the answer recorded for this idempotency key, not a new write
    stream: Iterator[bytes] | None = None  # Server-Sent Events, sent as they come

    def payload(self) -> dict[str, Any]:
        if isinstance(self.body, BaseModel):
            return self.body.model_dump(mode="json")
        return self.body


@dataclass(frozen=True, slots=True)
class Written:
    """A write's answer, computed from what it wrote (so it can be recorded in the write's own
    transaction), and the notification that asks for the next step (None: nothing to ask)."""

    answer: Answer
    appended: Appended | None = None


Write = Callable[["MessageStore"], Written]


def _no_nul(text: str | None) -> None:
    """PostgreSQL's jsonb cannot hold U+0000; refuse it as a bad message, not a crash."""
    if text is not None and "\x00" in text:
        raise ApiError(422, "invalid_message", "The message contains a character I can't store.")


# -- threads --------------------------------------------------------------------------------

H = TypeVar("H", bound=Callable[["Context", "Call"], "Answer"])


def _archive_faults(handler: H) -> H:
    """An archived thread that cannot be brought back (threads/archive.py) is the service's
    fault, never the request's: 503 while the archive is unreachable, 500 when its copy no
    longer matches what was recorded. The details go to the log, not to the client."""

    @functools.wraps(handler)
    def guarded(ctx: Context, call: Call) -> Answer:
        try:
            return handler(ctx, call)
        except ArchiveCorrupted as exc:
            log.error("archived thread %s cannot be restored: %s", call.params, exc)
            raise ApiError(
                500,
                "archive_corrupted",
                "This conversation was archived and its archived copy can't be read back; "
                "it has been kept as it was. Please contact the operator.",
            ) from None
        except ArchiveError as exc:
            log.warning("archived thread %s not restored: %s", call.params, exc)
            raise ApiError(
                503,
                "archive_unavailable",
                "This conversation is archived and can't be brought back right now; "
                "please try again in a moment.",
                headers={"Retry-After": "5"},
            ) from None

    return cast(H, guarded)


def _wait_seconds(ctx: Context, call: Call) -> float | None:
    wait = call.query_as(models.WaitQuery).wait
    limit = ctx.settings.api.max_wait_seconds
    if wait is not None and wait > limit:
        raise invalid_request([ErrorItem(field="wait", message=f"must be at most {limit:g}")])
    return wait


def start_thread(ctx: Context, call: Call) -> Answer:
    body = call.body_as(models.StartThreadRequest)
    wait = _wait_seconds(ctx, call)
    _no_nul(body.message)
    if body.callback_url is not None:
        allow_private = ctx.settings.callbacks.callback_allow_private
        problem = outbound.refusal(body.callback_url, allow_private=allow_private)
        if problem is not None:
            raise invalid_request(
                [ErrorItem(field="callback_url", message=problem)],
                f"The callback URL can't be used: {problem}.",
            )

    def write(store: MessageStore) -> Written:
        appended = session.start_thread(
            store,
            owner=call.user,
            message=body.message,
            now=ctx.clock(),
            title=body.title or None,
            callback_url=body.callback_url,
            idempotency_key=call.idempotency_key,
            max_length=ctx.settings.threads.max_message_length,
            traceparent=current_traceparent(),
            shards=ctx.settings.threads.thread_shards,
            multitask=body.multitask,
        )
        created = models.ThreadCreated(
            thread_id=appended.thread_id, position=appended.position, status="active"
        )
        return Written(Answer(201, created), appended)

    written = ctx.write(call, write)
    if not wait or body.message is None or written.answer.status != 201:
        return written.answer
    created = models.ThreadCreated.model_validate(written.answer.payload())
    if created.reply is not None:  # recorded with its reply by the previous release
        return written.answer
    reply = _reply(ctx, call, written, created.thread_id, created.position, wait)
    return replace(written.answer, body=created.model_copy(update={"reply": reply}))


@_archive_faults
def add_message(ctx: Context, call: Call) -> Answer:
    body = call.body_as(models.AddMessageRequest)
    wait = _wait_seconds(ctx, call)
    _no_nul(body.message)

    def write(store: MessageStore) -> Written:
        appended = session.add_message(
            store,
            call.params["thread_id"],
            owner=call.user,
            message=body.message,
            now=ctx.clock(),
            idempotency_key=call.idempotency_key,
            max_length=ctx.settings.threads.max_message_length,
            traceparent=current_traceparent(),
            multitask=call.query_as(models.MessageQuery).multitask,
        )
        # a retry's position is the first write's (`add_message` finds it)
        accepted = models.MessageAccepted(thread_id=appended.thread_id, position=appended.position)
        return Written(Answer(202, accepted), appended)

    written = ctx.write(call, write)
    if not wait or written.answer.status != 202:
        return written.answer
    accepted = models.MessageAccepted.model_validate(written.answer.payload())
    reply = _reply(ctx, call, written, accepted.thread_id, accepted.position, wait)
    if reply is None:
        return written.answer
    answered = models.MessageAnswered(
        thread_id=accepted.thread_id, position=accepted.position, reply=reply
    )
    return replace(written.answer, status=200, body=answered)


@_archive_faults
def end_thread(ctx: Context, call: Call) -> Answer:
    """Ask the engine to close the thread; a thread that already ended is answered as is."""

    def write(store: MessageStore) -> Written:
        thread_id, stream = session.resolve_thread(store, call.params["thread_id"], call.user)
        last = store.get_last_stream_message(stream)
        if last is not None and last.type == SessionCompleted.type:
            ended = models.ThreadEnding(thread_id=thread_id, position=last.position)
            return Written(Answer(200, ended))
        appended = session.request_termination(
            store, stream, owner=call.user, traceparent=current_traceparent()
        )
        ending = models.ThreadEnding(thread_id=appended.thread_id, position=appended.position)
        return Written(Answer(202, ending), appended)

    return ctx.write(call, write).answer


@_archive_faults
def decide_approval(ctx: Context, call: Call) -> Answer:
    """The owner's decision on a call waiting for approval; the same decision again is
    answered as it was, a different one is refused (409)."""
    body = call.body_as(models.ApprovalDecisionRequest)
    tool_call_id = call.params["tool_call_id"]

    def write(store: MessageStore) -> Written:
        decided = approvals.decide_approval(
            store,
            call.params["thread_id"],
            tool_call_id,
            owner=call.user,
            approve=body.decision == "approve",
            reason=body.reason,
            traceparent=current_traceparent(),
            now=ctx.clock(),
        )
        answer = models.ApprovalDecided(
            thread_id=decided.thread_id,
            tool_call_id=decided.approval.tool_call_id,
            decision="approved" if decided.approval.decision == "approved" else "declined",
            reason=decided.approval.reason,
            position=decided.position,
        )
        appended = Appended(decided.thread_id, decided.stream_name, decided.position)
        return Written(Answer(200, answer), appended if decided.created else None)

    return ctx.write(call, write).answer


@_archive_faults
def cancel_turn(ctx: Context, call: Call) -> Answer:
    """Stop the running turn; with nothing running, say so and write nothing."""
    body = call.body_as(models.CancelTurnRequest)

    def write(store: MessageStore) -> Written:
        cancelled = session.cancel_turn(
            store,
            call.params["thread_id"],
            owner=call.user,
            now=ctx.clock(),
            reason=body.reason,
            traceparent=current_traceparent(),
        )
        if cancelled.appended is None:
            answer = models.TurnCancellation(
                thread_id=cancelled.thread_id,
                cancelled=False,
                position=None,
                message="Nothing is running in this conversation, so there was nothing to cancel.",
            )
        else:
            answer = models.TurnCancellation(
                thread_id=cancelled.thread_id,
                cancelled=True,
                position=cancelled.appended.position,
                message="Stopped. Nothing more of that request will run; "
                "the conversation waits for your next message.",
            )
        return Written(Answer(200, answer))

    return ctx.write(call, write).answer


def _reply(
    ctx: Context, call: Call, written: Written, thread_id: str, position: int, wait: float
) -> models.Reply | None:
    """The reply to the user's message at `position`, waited for after the write has
    committed (never inside its transaction), for a first answer and a replayed one alike."""
    store = ctx.store()
    if written.appended is not None:
        stream = written.appended.stream_name
    else:
        _, stream = session.resolve_thread(store, thread_id, call.user)
    return wait_for_reply(store, stream, position, wait, signals=ctx.signals())


@_archive_faults
def get_thread(ctx: Context, call: Call) -> Answer:
    query = call.query_as(models.ThreadQuery)
    store = ctx.store()
    thread_id, stream = session.resolve_thread(store, call.params["thread_id"], call.user)
    detail = thread_detail(thread_id, read_thread(store, stream), ctx.prices)
    try:
        page = page_messages(detail, limit=query.limit, cursor=query.cursor, order=query.order)
    except InvalidMessageCursor as exc:
        message = f"The cursor {exc}; pass a `next_cursor` from an earlier page, or none."
        raise invalid_request([ErrorItem(field="cursor", message=str(exc))], message) from None
    return Answer(200, page)


@_archive_faults
def list_events(ctx: Context, call: Call) -> Answer:
    query = call.query_as(models.EventsQuery)
    store = ctx.store()
    thread_id, stream = session.resolve_thread(store, call.params["thread_id"], call.user)
    batch = store.get_stream_messages(stream, query.after + 1, query.limit + 1)
    more = len(batch) > query.limit
    events = [event_view(message) for message in batch[: query.limit]]
    page = models.EventPage(
        thread_id=thread_id,
        events=events,
        next_after=events[-1].position if more and events else None,
    )
    return Answer(200, page)


def list_threads(ctx: Context, call: Call) -> Answer:
    query = call.query_as(models.ListQuery)
    try:
        page = threads.list_threads(ctx.store(), call.user, limit=query.limit, cursor=query.cursor)
    except threads.InvalidCursor as exc:
        raise invalid_request([ErrorItem(field="cursor", message=str(exc))], str(exc)) from None
    items = [
        models.ThreadItem(
            thread_id=item.thread_id,
            title=item.title,
            status=item.status,
            created_at=item.created_at,
            last_activity_at=item.last_activity_at,
            version=item.version,
        )
        for item in page.items
    ]
    return Answer(200, models.ThreadList(threads=items, next_cursor=page.next_cursor))


# -- service --------------------------------------------------------------------------------


def health(ctx: Context, call: Call) -> Answer:
    """503 names what is down; the reason is one line without secrets (no password, no
    stack), the same line the log gets."""
    try:
        report = ctx.store().health()
    except StoreError as exc:
        log.warning("health check: %s", exc)
        return Answer(503, models.Health(status="unavailable", unavailable={"database": str(exc)}))
    if not report.ok:
        log.warning("health check: %s", report.detail)
        down = {"database": report.detail}
        return Answer(503, models.Health(status="unavailable", unavailable=down))
    return Answer(
        200,
        models.Health(
            status="ok",
            message_store_version=report.message_store_version,
            server_version=report.server_version,
        ),
    )


def openapi(ctx: Context, call: Call) -> Answer:
    return Answer(200, ctx.openapi())


# -- live replies ---------------------------------------------------------------------------


def _stream_key(ctx: Context) -> bytes:
    from messagedb_agent.api.stream_tokens import stream_key

    material = ctx.settings.api.stream_token_material
    if material is None:
        raise ApiError(
            503,
            "stream_tokens_unavailable",
            "Stream links are not set up on this server (it needs STREAM_TOKEN_SECRET); "
            "open the stream with your Authorization header instead.",
        )
    return stream_key(material)


@_archive_faults
def issue_stream_token(ctx: Context, call: Call) -> Answer:
    """A one-minute token for this thread's stream, for `EventSource` (no headers)."""
    from messagedb_agent.api.stream_tokens import issue

    thread_id, _ = session.resolve_thread(ctx.store(), call.params["thread_id"], call.user)
    issued = issue(_stream_key(ctx), call.user, thread_id)
    return Answer(
        200,
        models.StreamTokenIssued(
            token=issued.token,
            expires_at=issued.expires_at,
            stream_url=f"/v1/threads/{thread_id}/stream?token={issued.token}",
        ),
    )


def stream_user(ctx: Context, thread: str, token: str) -> str:
    """Who a stream token was issued to, for this thread (the router's check for `?token=`)."""
    from messagedb_agent.api.stream_tokens import verify

    return verify(_stream_key(ctx), token, thread)


@_archive_faults
def stream_thread(ctx: Context, call: Call) -> Answer:
    """The thread's events as Server-Sent Events (`live/stream.py`), after the cursor."""
    from messagedb_agent.live.stream import StreamPlan, thread_events

    query = call.query_as(models.StreamQuery)
    resume = call.resume_from or query.after
    cursor = _sse_cursor(resume) if resume is not None else START
    store = ctx.store()
    thread_id, stream = session.resolve_thread(store, call.params["thread_id"], call.user)
    plan = StreamPlan(
        thread_id,
        stream,
        cursor,
        query.format,
        ctx.settings.api.stream_max_seconds,
    )
    body = thread_events(store, ctx.signals(), plan, ctx.prices)
    return Answer(200, {}, stream=body)


def _sse_cursor(value: str) -> Cursor:
    try:
        return parse_cursor(value.strip())
    except ValueError:
        message = "must be an SSE id this stream sent: `12`, `12.3` or `12~40`"
        raise invalid_request(
            [ErrorItem(field="Last-Event-ID", message=message)],
            f"I can't resume from {value[:40]!r}: {message}.",
        ) from None


@_archive_faults
def decide_next_step(ctx: Context, call: Call) -> Answer:
    """What the step protocol would do next, as of a position: the same pure decision the
    step function makes, replayed over the thread's events up to there."""
    from messagedb_agent.projections.next_step import project_next_step

    query = call.query_as(models.DecisionQuery)
    store = ctx.store()
    _, stream = session.resolve_thread(store, call.params["thread_id"], call.user)
    events = read_thread(store, stream, to_position=query.at)
    if not events or (query.at is not None and events[-1].position < query.at):
        raise invalid_request(
            [ErrorItem(field="at", message="no such position in this thread")],
            f"This conversation has no position {query.at}.",
        )
    moment = events[-1].time if query.at is not None else ctx.clock()
    decision = project_next_step(events, moment)
    return Answer(
        200,
        models.DecisionView(
            position=events[-1].position,
            kind=decision.kind.value,
            step_id=decision.step_id,
            attempt=decision.attempt,
            not_before=decision.not_before,
            reason=decision.reason or decision.message,
            tool_calls=[models.ToolCallRef(id=c.id, name=c.name) for c in decision.tool_calls],
        ),
    )


@_archive_faults
def fork_thread(ctx: Context, call: Call) -> Answer:
    """A new thread with this one's history up to a position, owned by the same user."""
    body = call.body_as(models.ForkRequest)

    def write(store: MessageStore) -> Written:
        source = session.find_thread(store, call.params["thread_id"], call.user)
        forked = session.fork_thread(
            store,
            source,
            owner=call.user,
            at=body.at,
            shards=ctx.settings.threads.thread_shards,
        )
        answer = models.ForkCreated(
            thread_id=forked.thread_id,
            forked_from=source.thread_id,
            forked_at_position=body.at,
            position=forked.position,
        )
        return Written(Answer(201, answer), forked)

    return ctx.write(call, write).answer


MAX_COSTED_THREADS = 1000  # `/v1/me` reads each thread: beyond this many it says so


def me(ctx: Context, call: Call) -> Answer:
    """The signed-in user and the cost of their threads (the newest `MAX_COSTED_THREADS`)."""
    from messagedb_agent.api.transcript import cost_view
    from messagedb_agent.projections.cost import project_user_cost

    store = ctx.store()
    streams: list[str] = []
    cursor: str | None = None
    while len(streams) < MAX_COSTED_THREADS:
        page = threads.list_threads(store, call.user, limit=100, cursor=cursor)
        streams.extend(item.stream_name for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    streams = streams[:MAX_COSTED_THREADS]
    cost = project_user_cost((read_thread(store, s) for s in streams), ctx.prices)
    return Answer(
        200, models.Me(user_id=call.user, threads=len(streams), cost=cost_view(cost.total))
    )


@_archive_faults
def agui_run(ctx: Context, call: Call) -> Answer:
    """AG-UI's run input: the client's newest user message is appended (once per message id)
    and the run it starts is streamed until it ends, so an AG-UI client drives a thread with
    no code of ours. `threadId` names one of the caller's threads; an unknown one is created,
    under an id derived from the caller and `threadId` (so retries find it and nobody else's
    thread can be named). `resume` answers the run's interrupts (tool approvals)."""
    from ag_ui.core import RunAgentInput
    from pydantic import ValidationError

    from messagedb_agent.live.stream import StreamPlan, thread_events

    given = call.body_as(models.AguiRunInput)
    try:
        run = RunAgentInput.model_validate(given.model_dump(by_alias=True))
    except ValidationError as exc:
        problems = [
            ErrorItem(field=".".join(str(p) for p in e["loc"]) or None, message=e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise invalid_request(problems, "This is not an AG-UI run input I can use.") from None
    store = ctx.store()
    thread, position = _agui_thread(ctx, call, run)
    for entry in run.resume or []:
        answer = entry.payload if isinstance(entry.payload, dict) else {}
        decided = approvals.decide_approval(
            store,
            thread,
            entry.interrupt_id.split("@", 1)[0],  # a reused call id, as the stream renamed it
            owner=call.user,
            approve=entry.status == "resolved" and answer.get("decision") != "reject",
            reason=answer.get("reason") if isinstance(answer.get("reason"), str) else None,
            traceparent=current_traceparent(),
        )
        ctx.publish(Appended(decided.thread_id, decided.stream_name, decided.position))
    text = _agui_text(run)
    if text is not None:
        appended = session.add_message(
            store,
            thread,
            owner=call.user,
            message=text,
            now=ctx.clock(),
            idempotency_key=f"ag-ui:{_agui_message_id(run)}",
            max_length=ctx.settings.threads.max_message_length,
            traceparent=current_traceparent(),
        )
        ctx.publish(appended)
    elif not run.resume:
        raise ApiError(
            422, "invalid_message", "The run input needs a user message, or `resume` answers."
        )
    plan = StreamPlan(
        thread.thread_id,
        thread.stream_name,
        Cursor(position),
        "agui",
        ctx.settings.api.stream_max_seconds,
        until_run_ends=True,
    )
    return Answer(200, {}, stream=thread_events(store, ctx.signals(), plan, ctx.prices))


def _agui_thread(ctx: Context, call: Call, run: Any) -> tuple[session.Found, int]:
    """The run's `threadId`, found (the run's writes take it as found), and its head before
    this run's writes."""
    store = ctx.store()
    try:
        found = session.find_thread(store, run.thread_id, call.user)
    except ThreadNotFound:
        started = session.start_thread(
            store,
            owner=call.user,
            message=None,
            now=ctx.clock(),
            idempotency_key=f"ag-ui-thread:{run.thread_id}",
            shards=ctx.settings.threads.thread_shards,
        )
        found = session.find_thread(store, started.thread_id, call.user)
    head = store.stream_version(found.stream_name)
    return found, -1 if head is None else head


def _agui_text(run: Any) -> str | None:
    """The newest user message's text (text parts joined); the rest of `messages` is the
    client's copy of the history, which the log already holds."""
    users = [m for m in run.messages if m.role == "user"]
    if not users:
        return None
    content = users[-1].content
    if isinstance(content, str):
        return content
    parts = [part.text for part in content if getattr(part, "type", None) == "text"]
    if not parts:
        raise ApiError(422, "invalid_message", "I can only read text in a user message.")
    return "\n".join(parts)


def _agui_message_id(run: Any) -> str:
    return str([m for m in run.messages if m.role == "user"][-1].id)
