"""`BoundedBody` in front of a WSGI app, on a real socket pair standing in for gunicorn's."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from messagedb_agent.bounded_body import BoundedBody


class App:
    """Answers with the body it read, so a test sees what reached the function."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        self.bodies.append(body)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    with server, client:
        yield server, client


def _call(
    middleware: BoundedBody, server: socket.socket, headers: dict[str, str]
) -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/threads",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "gunicorn.socket": server,
        "wsgi.input": server.makefile("rb"),
        **headers,
    }
    started = Started()
    body = b"".join(middleware(environ, started))
    return started.status, body


class Started:
    """A WSGI `start_response` that keeps the status."""

    status = ""

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status


def test_a_body_that_stops_before_its_declared_length_is_answered_408_after_the_idle_time(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    app = App()
    client.sendall(b'{"message": "hi"}')  # 17 bytes of the 2 MB promised

    started = time.monotonic()
    status, body = _call(BoundedBody(app, idle_seconds=0.5), server, {"CONTENT_LENGTH": "2000000"})

    assert status.startswith("408")
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert 0.4 < time.monotonic() - started < 2.0
    assert app.bodies == []  # the function never saw it
    assert server.gettimeout() is None  # the socket is as gunicorn left it


def test_a_whole_body_reaches_the_app_unchanged(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    app = App()
    payload = b"x" * 200_000
    client.sendall(payload)

    status, body = _call(BoundedBody(app), server, {"CONTENT_LENGTH": str(len(payload))})

    assert status.startswith("200")
    assert app.bodies == [payload]
    assert body == payload


def test_a_declared_body_over_the_limit_is_refused_unread(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    app = App()

    status, body = _call(BoundedBody(app, max_bytes=1024), server, {"CONTENT_LENGTH": "4096"})

    assert status.startswith("413")
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert app.bodies == []


def test_without_gunicorn_the_request_passes_untouched() -> None:
    app = App()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": "2000000",
        "wsgi.input": io.BytesIO(b"short"),
    }

    body = b"".join(BoundedBody(app, idle_seconds=0.1)(environ, Started()))

    assert body == b"short"
