"""The ingest API as a plain object: `handle(request) -> response`, no server of its own.

Cloud Functions (functions-framework), a local Flask app and tests all call `handle`. Each
request goes: route → authenticate → rate limit → parse → handler; a handler's write goes
through `_write`: replay the answer recorded for its idempotency key, or write and record the
answer in one transaction (api/idempotency.py) → publish. Whatever goes wrong becomes a JSON
error body; an unexpected exception is logged here with its traceback and answered with
`internal_error`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import flask
import orjson
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import RequestRedirect, Rule

from messagedb_agent.api import errors, handlers, web
from messagedb_agent.api.auth import Authenticator
from messagedb_agent.api.errors import ApiError, ErrorItem
from messagedb_agent.api.idempotency import HEADER, AnswerTable, fingerprint, valid_key
from messagedb_agent.api.openapi import build_openapi
from messagedb_agent.api.rate_limit import RateLimiter
from messagedb_agent.api.routes import ROUTES, Route, url_map
from messagedb_agent.notification import NotificationPublisher
from messagedb_agent.observability.entry_points import note_request, request_scope
from messagedb_agent.observability.logging import bind_context
from messagedb_agent.projections.cost import price_table
from messagedb_agent.settings import Settings
from messagedb_agent.store.errors import StoreUnavailableError
from messagedb_agent.threads.commands import Appended
from messagedb_agent.threads.errors import (
    ApprovalDecided,
    ApprovalNotFound,
    MessageRejected,
    ThreadClosed,
    ThreadError,
    ThreadNotFound,
    TurnRunning,
)

if TYPE_CHECKING:
    from messagedb_agent.channels.callback import ReplySender
    from messagedb_agent.channels.conversations import Conversations
    from messagedb_agent.channels.inbound import Inbound
    from messagedb_agent.store.client import MessageStore
    from messagedb_agent.store.signals import StreamSignals

log = logging.getLogger(__name__)

StoreFactory = Callable[[], "MessageStore"]
PublisherFactory = Callable[[], NotificationPublisher]
Clock = Callable[[], datetime]

# Chat platforms' endpoints (`channels/`): signed by the platform, outside the route table.
CHANNELS = "/v1/channels/"
# What `_read_body` answers for a request without a body, which is not the JSON `null`.
NO_BODY: Any = object()
_THREAD_ERROR_STATUS: dict[type[ThreadError], int] = {
    ThreadNotFound: 404,
    ThreadClosed: 409,
    MessageRejected: 422,
    ApprovalNotFound: 404,
    ApprovalDecided: 409,
    TurnRunning: 409,
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class IngestApi:
    """One per process; thread-safe (the store pool and the publisher are shared)."""

    def __init__(
        self,
        store_factory: StoreFactory,
        publisher_factory: PublisherFactory,
        settings: Settings,
        clock: Clock = _utc_now,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.routes = ROUTES
        self._map = url_map(self.routes)
        self._authenticator = Authenticator(settings.api)
        self._store_factory = store_factory
        self._publisher_factory = publisher_factory
        self._store: MessageStore | None = None
        self._publisher: NotificationPublisher | None = None
        self._limiter: RateLimiter | None = None
        self._answers: AnswerTable | None = None
        self._openapi: dict[str, Any] | None = None
        self._signals: StreamSignals | None = None
        self._open_streams: dict[str, int] = {}
        self._channels: dict[str, Inbound | None] = {}
        self._conversations: Conversations | None = None
        self._senders: Mapping[str, ReplySender] = {}
        self._lock = threading.Lock()
        self._channel_lock = threading.Lock()
        self._context = handlers.Context(
            store=self.store,
            publish=self.publish,
            settings=settings,
            prices=price_table(settings.prices),
            clock=clock,
            openapi=self.openapi,
            write=self._write,
            signals=self.signals,
        )

    # -- collaborators, built on first use --------------------------------------------------

    def store(self) -> MessageStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._store_factory()
        return self._store

    def signals(self) -> StreamSignals:
        """One LISTEN connection per process, opened by the first request that waits."""
        if self._signals is None:
            from messagedb_agent.postgres.agent_schema import THREAD_EVENTS_CHANNEL
            from messagedb_agent.store.signals import StreamSignals

            store = self.store()
            with self._lock:
                if self._signals is None:
                    self._signals = StreamSignals(
                        store.dedicated_connection,
                        THREAD_EVENTS_CHANNEL,
                        stop_when=lambda: store.closed,
                    )
        return self._signals.start()  # waits for the first LISTEN once, briefly

    def close(self) -> None:
        """Stop the LISTEN session, if a waiting request opened one (the store is the
        runtime's, closed with it; an API built over a store that outlives it, as in tests,
        must release its listener itself)."""
        with self._lock:
            signals, self._signals = self._signals, None
        if signals is not None:
            signals.close()

    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            api = self.settings.api
            self._limiter = RateLimiter(self.store(), api.rate_limit_per_minute, api.burst)
        return self._limiter

    def answers(self) -> AnswerTable:
        if self._answers is None:
            self._answers = AnswerTable(self.store(), self.settings.api.idempotency_ttl_seconds)
        return self._answers

    def openapi(self) -> dict[str, Any]:
        if self._openapi is None:
            self._openapi = build_openapi(self.routes, self.settings)
        return self._openapi

    def publish(self, appended: Appended) -> None:
        """The fast path to the step function; a failure here is logged, never raised,
        because the relay republishes whatever was appended."""
        if appended.position < 0:
            return
        bind_context(stream_name=appended.stream_name)
        try:
            if self._publisher is None:
                with self._lock:
                    if self._publisher is None:
                        self._publisher = self._publisher_factory()
            self._publisher.publish([appended.notification])
        except Exception:
            log.warning(
                "publish failed for %s@%s; the relay will deliver it",
                appended.stream_name,
                appended.position,
                exc_info=True,
            )

    # -- requests ---------------------------------------------------------------------------

    def handle(self, request: flask.Request) -> flask.Response:
        """Answer one request inside its span and logging context, ending with one log line."""
        with request_scope(request.method, request.path, request.headers) as outcome:
            response = self._respond(request)
            outcome.status = response.status_code
        return response

    def _respond(self, request: flask.Request) -> flask.Response:
        try:
            response = self._dispatch(request)
        except ApiError as exc:
            response = _error_response(exc)
        except ThreadError as exc:
            status = _THREAD_ERROR_STATUS.get(type(exc), 400)
            response = _error_response(ApiError(status, exc.code, str(exc)))
        except StoreUnavailableError as exc:
            log.warning("database unavailable: %s", exc)
            response = _error_response(errors.unavailable())
        except Exception:
            log.exception("unexpected failure in %s %s", request.method, request.path)
            response = _error_response(errors.internal_error())
        return response

    def _dispatch(self, request: flask.Request) -> flask.Response:
        if request.method == "GET" and web.serves(request.path):
            return web.response(request.path)
        if request.path.startswith(CHANNELS):
            return self._channel(request)
        route, params = self._match(request)
        user = ""
        token = request.args.get("token") if route.streams else None
        if route.authenticated and token is not None and "Authorization" not in request.headers:
            user = handlers.stream_user(self._context, params["thread_id"], token)
        elif route.authenticated:
            user = self._authenticator.user_of(request.headers.get("Authorization"))
        note_request(request.method, route.path, user=user, thread_id=params.get("thread_id"))
        if route.rate_limited:
            decision = self.limiter().take(user)
            if not decision.allowed:
                raise ApiError(
                    429,
                    "rate_limited",
                    "You're sending messages faster than I can keep up with; "
                    f"please wait {decision.retry_after} seconds and try again.",
                    headers={"Retry-After": str(decision.retry_after)},
                )
        query = _parse_query(route, request)
        raw_body = self._read_body(route, request)
        body = _parse_body(route, raw_body)
        key = request.headers.get(HEADER) if route.idempotent else None
        if key is not None and not valid_key(key):
            raise errors.invalid_request(
                [ErrorItem(field=HEADER, message="must be 1 to 255 visible ASCII characters")]
            )
        signature = None
        if key is not None:
            signature = fingerprint(
                request.method, request.path, None if raw_body is NO_BODY else raw_body
            )
        resume = request.headers.get("Last-Event-ID") if route.streams else None
        call = handlers.Call(user, params, query, body, key, signature, resume)
        if route.streams:
            return self._stream(route, call)
        answer = route.handler(self._context, call)
        replayed = {"Idempotent-Replayed": "true"} if answer.replayed else None
        return _json_response(answer.status, answer.payload(), replayed)

    def _channel(self, request: flask.Request) -> flask.Response:
        """A chat platform's request: signed by the platform, not by a bearer token, and
        answered as the platform expects. A channel that is not configured is not there."""
        platform, _, endpoint = request.path[len(CHANNELS) :].partition("/")
        inbound = self._inbound(platform)
        handle = inbound.endpoints().get(endpoint) if inbound is not None else None
        if handle is None:
            raise errors.not_found()
        if request.method != "POST":
            raise errors.method_not_allowed(["POST"])
        note_request(request.method, request.path, user="", thread_id=None)
        data = self._bounded(request, cache=False)  # the raw bytes, as the platform signed them
        answer = handle(data, dict(request.headers.items()))
        return _json_response(answer.status, answer.body, answer.headers)

    def _inbound(self, platform: str) -> Inbound | None:
        if platform not in self._channels:
            with self._channel_lock:  # its own lock: building takes the store's (`_lock`)
                if platform not in self._channels:
                    self._channels[platform] = self._build_inbound(platform)
        return self._channels[platform]

    def _build_inbound(self, platform: str) -> Inbound | None:
        from messagedb_agent.channels import platforms
        from messagedb_agent.channels.conversations import Conversations

        if self._conversations is None:  # shared by every platform, built by the first
            self._senders = platforms.senders(self.settings)
            self._conversations = Conversations(
                self.store(),
                self.publish,
                self.clock,
                self.limiter,
                self.settings.threads.thread_shards,
            )
        return platforms.inbound(platform, self.settings, self._conversations, self._senders)

    def _stream(self, route: Route, call: handlers.Call) -> flask.Response:
        """A Server-Sent Events response; the user's open streams are counted (in this
        process) from the moment it is granted until the body ends or the client goes."""
        limit = self.settings.api.streams_per_user
        with self._lock:
            if self._open_streams.get(call.user, 0) >= limit:
                raise ApiError(
                    429,
                    "too_many_streams",
                    f"You already have {limit} live streams open; close one (or wait for it "
                    "to end) before opening another.",
                    headers={"Retry-After": "5"},
                )
            self._open_streams[call.user] = self._open_streams.get(call.user, 0) + 1
        try:
            answer = route.handler(self._context, call)
        except BaseException:
            self._stream_closed(call.user)
            raise
        assert answer.stream is not None
        body = _CountedBody(answer.stream, lambda: self._stream_closed(call.user))
        response = flask.Response(body, status=answer.status, mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"  # proxies that buffer: pass it through
        return response

    def _stream_closed(self, user: str) -> None:
        with self._lock:
            left = self._open_streams.get(user, 1) - 1
            if left > 0:
                self._open_streams[user] = left
            else:
                self._open_streams.pop(user, None)

    def _match(self, request: flask.Request) -> tuple[Route, dict[str, str]]:
        adapter = self._map.bind("", path_info=request.path)
        try:
            index, params = adapter.match(method=request.method)
        except MethodNotAllowed as exc:
            raise errors.method_not_allowed(list(exc.valid_methods or [])) from None
        except (NotFound, RequestRedirect):
            raise errors.not_found() from None
        return self.routes[int(index)], dict(params)

    def _read_body(self, route: Route, request: flask.Request) -> Any:
        """The decoded JSON body, or `NO_BODY` when the request has none.

        A body that is there must say it is JSON: a form or a text body that happens to parse
        as JSON is a client mixing up endpoints, and answering it as JSON would hide that.
        An empty body needs no type, so a bare `POST .../end` keeps working.
        """
        if route.body is None:
            return NO_BODY
        data = self._bounded(request, cache=True)
        if not data.strip():
            return NO_BODY
        if not _declares_json(request):
            raise errors.unsupported_media_type()
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise errors.invalid_json() from None

    def _bounded(self, request: flask.Request, *, cache: bool) -> bytes:
        """The body, refused with a 413 past MAX_BODY_BYTES (declared or as it arrives)."""
        limit = self.settings.api.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise errors.payload_too_large(limit)
        request.max_content_length = limit
        try:
            return request.get_data(cache=cache)
        except RequestEntityTooLarge:
            raise errors.payload_too_large(limit) from None

    def _write(self, call: handlers.Call, write: handlers.Write) -> handlers.Written:
        """Run a handler's write: with an idempotency key once, its answer recorded in the
        write's own transaction (or the recorded answer replayed); then publish what it
        appended, after the commit, so the step reads it."""
        if call.idempotency_key is None or call.request_fingerprint is None:
            written = write(self.store())
        else:
            written = self.answers().write_once(
                call.user, call.idempotency_key, call.request_fingerprint, write
            )
        if written.appended is not None:
            self.publish(written.appended)
        return written

    # -- local serving ----------------------------------------------------------------------

    def flask_app(self) -> flask.Flask:
        """A Flask app that routes every path to `handle`, as functions-framework does."""
        app = flask.Flask("ingest")
        app.url_map.add(Rule("/", defaults={"path": ""}, endpoint="run"))
        app.url_map.add(Rule("/<path:path>", endpoint="run"))
        app.view_functions["run"] = lambda path: self.handle(flask.request)
        return app


class _CountedBody:
    """A stream's body that tells when it is over: the server closes it when the client goes
    or the body ends (WSGI's `close`), even if it never started. A failure inside ends the
    stream quietly after logging it: the client resumes from its last id."""

    def __init__(self, body: Iterator[bytes], closed: Callable[[], None]) -> None:
        self._body = body
        self._closed: Callable[[], None] | None = closed

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception:
            log.exception("a stream ended on a failure")

    def close(self) -> None:
        closed, self._closed = self._closed, None
        if closed is not None:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
            closed()


def _parse_query(route: Route, request: flask.Request) -> BaseModel | None:
    model = route.query
    if route.authenticated:
        # the API's own resources; probes and the document ignore what monitors add
        _refuse_unknown_parameters(model, request)
    if model is None:
        return None
    try:
        return model.model_validate(request.args.to_dict(flat=True))
    except ValidationError as exc:
        raise errors.invalid_request(_problems(exc)) from None


def _refuse_unknown_parameters(model: type[BaseModel] | None, request: flask.Request) -> None:
    """A misspelt or unsupported parameter is an error, not a silently different answer."""
    accepted = list(model.model_fields) if model is not None else []
    unknown = [name for name in request.args if name not in accepted]
    if not unknown:
        return
    takes = (
        "it accepts " + ", ".join(f"`{name}`" for name in accepted)
        if accepted
        else "it takes no query parameters"
    )
    names = ", ".join(f"`{name}`" for name in unknown)
    raise errors.invalid_request(
        [ErrorItem(field=name, message="unknown query parameter") for name in unknown],
        f"This route does not know the query parameter {names}; {takes}.",
    )


def _declares_json(request: flask.Request) -> bool:
    """`application/json`, with no charset or UTF-8 (the only one JSON has, RFC 8259)."""
    if request.mimetype != "application/json":
        return False
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    return charset in ("utf-8", "utf8")


def _parse_body(route: Route, raw: Any) -> BaseModel | None:
    model = route.body
    if model is None:
        return None
    if raw is NO_BODY:
        if route.body_required:
            raise errors.invalid_request(
                [ErrorItem(field=None, message="a JSON object is required")],
                "The request needs a JSON body.",
            )
        raw = {}
    if not isinstance(raw, dict):
        raise errors.invalid_request(
            [ErrorItem(field=None, message="must be a JSON object")],
            "The request body must be a JSON object.",
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise errors.invalid_request(_problems(exc)) from None


def _problems(exc: ValidationError) -> list[ErrorItem]:
    return [
        ErrorItem(
            field=".".join(str(part) for part in error["loc"]) or None,
            message="unknown field" if error["type"] == "extra_forbidden" else error["msg"],
        )
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _json_response(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> flask.Response:
    response = flask.Response(orjson.dumps(payload), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _error_response(error: ApiError) -> flask.Response:
    payload = error.body().model_dump(mode="json", exclude_none=True)
    return _json_response(error.status, payload, error.headers)


def create_api(
    store_factory: StoreFactory,
    publisher_factory: PublisherFactory,
    settings: Settings,
    clock: Clock = _utc_now,
) -> IngestApi:
    return IngestApi(store_factory, publisher_factory, settings, clock)
