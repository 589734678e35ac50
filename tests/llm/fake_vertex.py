"""A local HTTP server speaking the two Vertex AI REST routes the providers use.

It serves Gemini's `generateContent` and Claude's `rawPredict` on 127.0.0.1, records every
request (path, headers, JSON body) so tests can assert on what the real SDKs put on the wire,
and answers from a queue of scripted replies, which may be errors or slow.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GEMINI_ROUTE = re.compile(
    r"^/v1beta1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+):generateContent$"
)
CLAUDE_ROUTE = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):rawPredict$"
)

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class Recorded:
    api: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    delay: float = 0.0


@dataclass
class FakeVertex:
    """Start with `start()`, script with `reply(...)`, read `requests` afterwards."""

    requests: list[Recorded] = field(default_factory=list)
    _replies: deque[Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, body: dict[str, Any], *, status: int = 200, delay: float = 0.0) -> None:
        with self._lock:
            self._replies.append(Reply(status, body, delay))

    def error(self, status: int, message: str, *, delay: float = 0.0) -> None:
        """An error in Google's API format, which Vertex uses for both publishers."""
        body = {
            "error": {
                "code": status,
                "message": message,
                "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
            }
        }
        self.reply(body, status=status, delay=delay)

    @property
    def last(self) -> Recorded:
        assert self.requests, "the server received no request"
        return self.requests[-1]

    def start(self) -> FakeVertex:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on `requests` instead."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-vertex",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        path = handler.path.split("?", 1)[0]
        api, match = "gemini", GEMINI_ROUTE.match(path)
        if match is None:
            api, match = "claude", CLAUDE_ROUTE.match(path)
        if match is None:
            self._send(handler, Reply(404, {"error": {"code": 404, "message": f"no route {path}"}}))
            return
        with self._lock:
            self.requests.append(
                Recorded(api, path, match.groupdict(), dict(handler.headers.items()), body)
            )
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            reply = Reply(500, {"error": {"code": 500, "message": "no reply scripted"}})
        self._send(handler, reply)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        payload = json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting: exactly what a timeout test wants


def gemini_reply(
    *parts: dict[str, Any],
    finish_reason: str = "STOP",
    prompt_tokens: int = 11,
    output_tokens: int = 7,
    model_version: str = "gemini-2.5-flash-001",
) -> dict[str, Any]:
    """A `generateContent` response body with one candidate made of `parts`."""
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": list(parts)},
                "finishReason": finish_reason,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        },
        "modelVersion": model_version,
    }


def claude_reply(
    *content: dict[str, Any],
    stop_reason: str = "end_turn",
    input_tokens: int = 13,
    output_tokens: int = 5,
    model: str = "claude-sonnet-4-5",
) -> dict[str, Any]:
    """A Messages-API response body, as Claude on Vertex returns it from `rawPredict`."""
    return {
        "id": "msg_vrtx_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
