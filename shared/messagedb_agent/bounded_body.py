"""A request body that stops arriving is given up on after a few seconds, not held for ever.

functions-framework (3.10) serves a function with gunicorn's threaded worker, which reads a
body from a blocking socket without a timeout: a request whose `Content-Length` promises more
than the client sends holds a worker thread until the client goes away. None of the settings
functions-framework hands gunicorn bounds that read. `timeout` (CLOUD_RUN_TIMEOUT_SECONDS) is
the worker's heartbeat, which the threaded worker keeps beating while one of its threads waits;
THREADED_TIMEOUT_ENABLED raises an exception into the thread, which a thread blocked in
`recv` never sees; and WORKERS/THREADS only change how many such waits it takes to stop
serving. With THREADS=1 the sync worker's heartbeat does end the wait, by killing the worker
and every request it serves, so a 30-second `?wait=` would be killed as well.

So the body is read here, in front of the function, from the connection's own socket
(`gunicorn.socket`) with a timeout per read: when nothing arrives for `idle` seconds the request
is answered 408 and, the body having failed, gunicorn closes the connection instead of waiting
to drain it. The body read is handed on unchanged, so size limits downstream still apply.
Without gunicorn (Flask's test client, the Werkzeug server) requests pass untouched.

What it does not bound: a client that keeps sending a byte every few seconds. Cloud Run ends
every request at the service's request timeout whatever it is doing (60 s for ingest in
`infra/`), which bounds that in the cloud; locally it would take a deliberate attack.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import flask

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

IDLE_SECONDS = 3.0  # no byte of the body for this long: the client is not sending it
MAX_BYTES = 32 * 1024 * 1024  # Cloud Run's limit for an HTTP/1 request
_STEP = 64 * 1024


class BoundedBody:
    """WSGI middleware: read the body with a timeout per read, then call the app."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        idle_seconds: float = IDLE_SECONDS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.app = app
        self.idle_seconds = idle_seconds
        self.max_bytes = max_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, socket.socket) or not _has_body(environ):
            return self.app(environ, start_response)
        declared = _content_length(environ)
        if declared is not None and declared > self.max_bytes:
            return _refuse(start_response, 413, "payload_too_large", "The request is too large.")
        try:
            body = self._read(environ["wsgi.input"], sock, declared)
        except TimeoutError:
            log.warning(
                "gave up on a request body after %.0f s without a byte: %s %s, Content-Length %s",
                self.idle_seconds,
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                environ.get("CONTENT_LENGTH") or "(chunked)",
            )
            return _refuse(
                start_response,
                408,
                "request_timeout",
                "The request body stopped arriving before its declared end.",
            )
        except _TooLarge:
            return _refuse(start_response, 413, "payload_too_large", "The request is too large.")
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)

    def _read(self, stream: Any, sock: socket.socket, declared: int | None) -> bytes:
        """The whole body, each read waiting at most `idle_seconds`; TimeoutError if one waits
        longer, and a body shorter than declared (the client closed) is a timeout too."""
        previous = sock.gettimeout()
        sock.settimeout(self.idle_seconds)
        chunks: list[bytes] = []
        size = 0
        try:
            while declared is None or size < declared:
                want = _STEP if declared is None else min(_STEP, declared - size)
                chunk: bytes = stream.read(want)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise _TooLarge
                chunks.append(chunk)
        except OSError:  # a timeout, a reset, or gunicorn's NoMoreData: the body is not coming
            raise TimeoutError from None
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)
        if declared is not None and size < declared:
            raise TimeoutError
        return b"".join(chunks)


class _TooLarge(Exception):
    pass


def bound_request_bodies(app: flask.Flask | None = None) -> bool:
    """Put `BoundedBody` in front of `app`, by default the app being created.

    functions-framework executes a function's module inside the application context of the
    app it is creating, so a `main.py` calling this at import wraps the app that will serve
    it. False (and nothing done) where there is no app.
    """
    if app is None:
        if not flask.has_app_context():
            return False
        app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    assert app is not None
    app.wsgi_app = BoundedBody(app.wsgi_app)  # type: ignore[method-assign]
    return True


def _has_body(environ: WSGIEnvironment) -> bool:
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    return chunked or (_content_length(environ) or 0) > 0


def _content_length(environ: WSGIEnvironment) -> int | None:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or ""))
    except ValueError:
        return None


def _refuse(start_response: StartResponse, status: int, code: str, message: str) -> Iterable[bytes]:
    """An answer in the ingest API's error shape; the connection closes after it."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    reason = {408: "Request Timeout", 413: "Content Too Large"}[status]
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return [body]
