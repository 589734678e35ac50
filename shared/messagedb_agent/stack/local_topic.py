"""A built-in stand-in for Pub/Sub, for machines without gcloud and Java.

It speaks the one call the publisher needs, Pub/Sub's REST `topics.publish`
(`POST /v1/projects/P/topics/T:publish` with `{"messages": [{"data", "attributes",
"orderingKey"}]}`, answering `{"messageIds": [...]}` once the messages are queued), and
pushes each message to the step function as Eventarc would: a binary-mode CloudEvent of type
`google.cloud.pubsub.topic.v1.messagePublished` with the push envelope as its data. A failed
push (no answer, or any status but 2xx) is retried with exponential backoff; after the last
attempt the message is kept in `dead_letters` and reported, as a dead-letter topic would.
Messages live in memory only: stopping the stack drops what is queued, and the relay
re-announces whatever still needs a step.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from messagedb_agent.pubsub.envelope import cloud_event_headers, encode_push
from messagedb_agent.stack.processes import FUNCTION_CLIENT_LIMITS

log = logging.getLogger(__name__)

_PUBLISH_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/topics/(?P<topic>[^/:]+):publish$")


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    message_id: str = field(compare=False)
    data: bytes = field(compare=False)
    attributes: dict[str, str] = field(compare=False)
    published: datetime = field(compare=False)
    attempt: int = field(default=0, compare=False)


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    attempts: int
    last_error: str


class LocalTopic:
    """One topic with one push subscription, in this process."""

    def __init__(
        self,
        project: str,
        topic: str,
        push_endpoint: str,
        *,
        subscription: str = "agent-steps-step",
        max_attempts: int = 5,
        min_backoff: float = 1.0,
        max_backoff: float = 10.0,
        push_timeout: float = 300.0,
        workers: int = 4,
    ) -> None:
        self.project = project
        self.topic = topic
        self.topic_path = f"projects/{project}/topics/{topic}"
        self.subscription_path = f"projects/{project}/subscriptions/{subscription}"
        self.push_endpoint = push_endpoint
        self.max_attempts = max_attempts
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.push_timeout = push_timeout
        self.dead_letters: list[DeadLetter] = []
        self.delivered = 0
        self._heap: list[_Pending] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._workers = [
            threading.Thread(target=self._deliver_loop, name=f"local-topic-{i}", daemon=True)
            for i in range(workers)
        ]
        self._server: ThreadingHTTPServer | None = None
        self._server_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        topic = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status, body = topic._publish_request(self.path, self._body())
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, name="local-topic-http", daemon=True
        )
        self._server_thread.start()
        for worker in self._workers:
            worker.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "the local topic is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for worker in self._workers:
            if worker.is_alive():
                worker.join(5)

    # -- publishing --------------------------------------------------------------------------

    def publish(self, data: bytes, attributes: dict[str, str] | None = None) -> str:
        message_id = str(next(self._ids))
        pending = _Pending(
            time.monotonic(),
            next(self._seq),
            message_id,
            data,
            dict(attributes or {}),
            datetime.now(UTC),
        )
        with self._cond:
            heapq.heappush(self._heap, pending)
            self._cond.notify()
        return message_id

    def _publish_request(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        match = _PUBLISH_PATH.match(path)
        if match is None or (match["project"], match["topic"]) != (self.project, self.topic):
            return 404, {"error": {"code": 404, "message": f"Resource not found: {path}"}}
        try:
            request = json.loads(raw)
            messages = request["messages"]
            decoded = [
                (
                    base64.b64decode(m.get("data", ""), validate=True),
                    {str(k): str(v) for k, v in (m.get("attributes") or {}).items()},
                )
                for m in messages
            ]
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            return 400, {"error": {"code": 400, "message": f"invalid publish request: {exc}"}}
        if not decoded:
            return 400, {"error": {"code": 400, "message": "no messages"}}
        return 200, {"messageIds": [self.publish(data, attrs) for data, attrs in decoded]}

    # -- pushing -----------------------------------------------------------------------------

    def _next_due(self) -> _Pending | None:
        with self._cond:
            while not self._stopping.is_set():
                if self._heap:
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
        return None

    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=self.push_timeout, limits=FUNCTION_CLIENT_LIMITS) as client:
            while (pending := self._next_due()) is not None:
                self._push(client, pending)

    def _push(self, client: httpx.Client, pending: _Pending) -> None:
        pending.attempt += 1
        body = encode_push(
            pending.data,
            subscription=self.subscription_path,
            message_id=pending.message_id,
            attributes=pending.attributes,
            publish_time=pending.published,
            delivery_attempt=pending.attempt,
        )
        headers = cloud_event_headers(
            topic_path=self.topic_path, message_id=pending.message_id, time=pending.published
        )
        try:
            response = client.post(self.push_endpoint, json=body, headers=headers)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            with self._cond:
                self.delivered += 1
            return
        if pending.attempt >= self.max_attempts:
            letter = DeadLetter(
                pending.message_id, pending.data, pending.attributes, pending.attempt, error
            )
            with self._cond:
                self.dead_letters.append(letter)
            log.error(
                "local topic: message %s dead-lettered after %s attempts (%s): %s",
                pending.message_id,
                pending.attempt,
                error,
                pending.data.decode(errors="replace"),
            )
            return
        backoff = min(self.max_backoff, self.min_backoff * 2 ** (pending.attempt - 1))
        pending.due = time.monotonic() + backoff
        with self._cond:
            heapq.heappush(self._heap, pending)
            self._cond.notify()
