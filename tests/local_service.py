"""The plumbing every local stand-in for a remote service shares: a threaded HTTP server on
127.0.0.1 whose POSTs go to the stand-in's `_handle`, started and stopped by the test."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class LocalService:
    """Mix into a stand-in that defines `_handle(handler)` and a `_server` attribute."""

    thread_name: ClassVar[str] = "local-service"
    _server: ThreadingHTTPServer | None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the service first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                service._handle(self)

            def do_GET(self) -> None:
                service._handle_get(self)

            def do_PUT(self) -> None:
                service._handle_update(self)

            def do_PATCH(self) -> None:
                service._handle_update(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests assert on what the stand-in recorded instead."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=self.thread_name,
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def _handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        send_json(handler, 405, {"error": {"code": 405, "message": "POST only"}})

    def _handle_update(self, handler: BaseHTTPRequestHandler) -> None:
        send_json(handler, 405, {"error": {"code": 405, "message": "POST only"}})


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with a JSON body, as the remote services do."""
    payload = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(payload)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)
