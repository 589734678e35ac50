"""The web chat and thread inspector: static files of the package, served by ingest itself.

No build step and no CDN: the files in `messagedb_agent/web/` are served as they are, read
once per process. `/` leads to `/ui/`. The page talks to this same API (bearer token in a
header; a stream token for `EventSource`), so a strict Content-Security-Policy holds: only
this origin's scripts, styles and connections, and no framing.
"""

from __future__ import annotations

import functools
from pathlib import Path

import flask

ROOT = Path(__file__).resolve().parent.parent / "web"
PREFIX = "/ui/"
TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def serves(path: str) -> bool:
    return path in ("/", "/ui") or (path.startswith(PREFIX) and _name(path) in TYPES)


def response(path: str) -> flask.Response:
    if path in ("/", "/ui"):
        return flask.redirect(PREFIX, 302)  # type: ignore[return-value]
    name = _name(path)
    response = flask.Response(_read(name), status=200, content_type=TYPES[name])
    response.headers["Cache-Control"] = "no-cache"  # revalidated: a deploy shows at once
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _name(path: str) -> str:
    return path[len(PREFIX) :] or "index.html"


@functools.cache
def _read(name: str) -> bytes:
    return (ROOT / name).read_bytes()
