"""One function per operation: validated input in, an answer out; no HTTP in sight.

Handlers call the engine's session commands and read models; every write is followed by a
publish of its notification (the fast path to the step function). Refusals are raised as
`ApiError` or the engine's `ThreadError`s; the router turns both into error bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

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
from messagedb_agent.observability.tracing import current_traceparent
from messagedb_agent.projections.cost import PriceTable
from messagedb_agent.settings import Settings
from messagedb_agent.store.errors import StoreError
from messagedb_agent.threads import commands as session
from messagedb_agent.threads import index as threads
from messagedb_agent.threads.commands import Appended
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
    signals: Callable[[], StreamSignals | None] = lambda: None  # wake-ups for `?wait=`


@dataclass(frozen=True, slots=True)
class Call:
    user: str
    params: dict[str, str] = field(default_factory=dict)
    query: BaseModel | None = None
    body: BaseModel | None = None
    idempotency_key: str | None = None

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
    fresh: bool = True  # False: the write had already happened (a retry with the same key)

    def payload(self) -> dict[str, Any]:
        if isinstance(self.body, BaseModel):
            return self.body.model_dump(mode="json")
        return self.body


def _no_nul(text: str | None) -> None:
    """PostgreSQL's jsonb cannot hold U+0000; refuse it as a bad message, not a crash."""
    if text is not None and "\x00" in text:
        raise ApiError(422, "invalid_message", "The message contains a character I can't store.")


# -- threads --------------------------------------------------------------------------------


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
    store = ctx.store()
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
    )
    ctx.publish(appended)
    reply = None
    if wait and body.message is not None:
        reply = wait_for_reply(
            store, appended.stream_name, appended.position, wait, signals=ctx.signals()
        )
    created = models.ThreadCreated(
        thread_id=appended.thread_id, position=appended.position, status="active", reply=reply
    )
    return Answer(201, created, fresh=appended.created)


def add_message(ctx: Context, call: Call) -> Answer:
    body = call.body_as(models.AddMessageRequest)
    wait = _wait_seconds(ctx, call)
    _no_nul(body.message)
    store = ctx.store()
    appended = session.add_message(
        store,
        call.params["thread_id"],
        owner=call.user,
        message=body.message,
        now=ctx.clock(),
        idempotency_key=call.idempotency_key,
        max_length=ctx.settings.threads.max_message_length,
        traceparent=current_traceparent(),
    )
    position = appended.position  # a retry's is the first write's (`add_message` finds it)
    ctx.publish(appended)
    if wait:
        reply = wait_for_reply(store, appended.stream_name, position, wait, signals=ctx.signals())
        if reply is not None:
            answered = models.MessageAnswered(
                thread_id=appended.thread_id, position=position, reply=reply
            )
            return Answer(200, answered, fresh=appended.created)
    accepted = models.MessageAccepted(thread_id=appended.thread_id, position=position)
    return Answer(202, accepted, fresh=appended.created)


def end_thread(ctx: Context, call: Call) -> Answer:
    """Ask the engine to close the thread; a thread that already ended is answered as is."""
    store = ctx.store()
    thread_id, stream = session.resolve_thread(store, call.params["thread_id"], call.user)
    last = store.get_last_stream_message(stream)
    if last is not None and last.type == SessionCompleted.type:
        return Answer(200, models.ThreadEnding(thread_id=thread_id, position=last.position))
    appended = session.request_termination(
        store, stream, owner=call.user, traceparent=current_traceparent()
    )
    ctx.publish(appended)
    ending = models.ThreadEnding(thread_id=appended.thread_id, position=appended.position)
    return Answer(202, ending, fresh=appended.created)


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
