"""A local Slack: the Web API methods the agent calls, as strict as Slack about them, and the
other direction: Events API and interactivity requests signed as Slack signs them.

Web API (https://docs.slack.dev/apis/web-api/): `POST /api/<method>`. A JSON body needs
`Content-Type: application/json` and the token as `Authorization: Bearer` (never in the body);
no token is `not_authed`, an unknown one `invalid_auth`. Errors are HTTP 200 with
`{"ok": false, "error": "<code>"}`; a rate limit is HTTP 429 with an integer `Retry-After`
(https://docs.slack.dev/apis/web-api/rate-limits). `chat.postMessage`
(https://docs.slack.dev/reference/methods/chat.postMessage): `channel` must be one Slack has
(`channel_not_found`), there must be `text` or `blocks` (`no_text`), at most 50 blocks, a
section's text at most 3,000 characters (https://docs.slack.dev/reference/block-kit/blocks,
.../section-block; the code Slack uses for these is not documented: `invalid_blocks`); about one
message per second per channel, with bursts, after which it answers 429
("generally allow an app to post 1 message per second to a specific channel").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from tests.local_service import LocalService, send_json

BOT_TOKEN = "xoxb-test-bot-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0AGENT01"
BURST = 5  # messages a channel takes at once before the per-second limit bites


@dataclass(frozen=True)
class Posted:
    method: str
    body: dict[str, Any]
    ts: str

    @property
    def channel(self) -> str:
        return str(self.body.get("channel"))

    @property
    def thread_ts(self) -> str | None:
        value = self.body.get("thread_ts")
        return str(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.body.get("blocks") or [])

    @property
    def shown(self) -> str:
        """What a person sees: the blocks' text when there are blocks, else `text`."""
        if not self.blocks:
            return self.text
        return "\n".join(b["text"]["text"] for b in self.blocks if b.get("type") == "section")


@dataclass(frozen=True)
class Failure:
    status: int
    error: str
    retry_after: int | None = None


@dataclass
class FakeSlack(LocalService):
    channels: set[str] = field(default_factory=lambda: {"C0GENERAL1", "D0DIRECT01"})
    posted: list[Posted] = field(default_factory=list)
    refused: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    _failures: deque[Failure] = field(default_factory=deque)
    _sent: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _clock: int = 0
    thread_name: ClassVar[str] = "fake-slack"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def fail(self, status: int = 503, error: str = "service_unavailable", times: int = 1) -> None:
        """The next `times` calls fail as Slack fails: 429 with Retry-After, 5xx, or ok:false."""
        with self._lock:
            for _ in range(times):
                retry = 1 if status == 429 else None
                self._failures.append(Failure(status, error, retry))

    def in_channel(self, channel: str) -> list[Posted]:
        with self._lock:
            return [p for p in self.posted if p.channel == channel]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        if not path.startswith("/api/"):
            send_json(handler, 404, {"ok": False, "error": "unknown_method"})
            return
        method = path[len("/api/") :]
        status, answer, headers = self._answer(method, handler, raw)
        send_json(handler, status, answer, headers)

    def _answer(
        self, method: str, handler: BaseHTTPRequestHandler, raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        kind = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return 200, {"ok": False, "error": "invalid_json"}, {}
            if not isinstance(body, dict):
                return 200, {"ok": False, "error": "json_not_object"}, {}
            if "token" in body:  # JSON bodies carry the token in the header only
                return 200, {"ok": False, "error": "invalid_arguments"}, {}
        elif kind == "application/x-www-form-urlencoded":
            body = dict(urllib.parse.parse_qsl(raw.decode()))
        else:
            return 200, {"ok": False, "error": "invalid_post_type"}, {}
        auth = handler.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if not token and kind != "application/json":
            token = str(body.get("token") or "")
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if (scheme and scheme != "Bearer") or token != BOT_TOKEN:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method not in ("chat.postMessage", "chat.update"):
            return 200, {"ok": False, "error": "unknown_method"}, {}
        with self._lock:
            if method == "chat.update" and not self._failures:
                return self._update(body)
            if self._failures:
                failure = self._failures.popleft()
                self.refused.append((method, body, failure.error))
                headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
                return failure.status, {"ok": False, "error": failure.error}, headers
            problem = _post_problem(body, self.channels)
            if problem is None and not self._within_rate(str(body["channel"])):
                self.refused.append((method, body, "ratelimited"))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
            if problem is not None:
                self.refused.append((method, body, problem))
                return 200, {"ok": False, "error": problem}, {}
            self._clock += 1
            ts = f"{int(time.time())}.{self._clock:06d}"
            self.posted.append(Posted(method, body, ts))
        message = {"type": "message", "subtype": "bot_message", "bot_id": "B0AGENT001", "ts": ts}
        message["text"] = str(body.get("text") or "")[:40_000]
        return 200, {"ok": True, "channel": body["channel"], "ts": ts, "message": message}, {}

    def _update(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """`chat.update` (https://docs.slack.dev/reference/methods/chat.update): this app's
        message at `channel` and `ts` (`message_not_found`), its text or blocks replaced."""
        found = next(
            (
                (i, p)
                for i, p in enumerate(self.posted)
                if p.channel == str(body.get("channel")) and p.ts == str(body.get("ts"))
            ),
            None,
        )
        if found is None:
            self.refused.append(("chat.update", body, "message_not_found"))
            return 200, {"ok": False, "error": "message_not_found"}, {}
        problem = _post_problem(body, self.channels)
        if problem is not None:
            self.refused.append(("chat.update", body, problem))
            return 200, {"ok": False, "error": problem}, {}
        index, posted = found
        kept = {k: v for k, v in posted.body.items() if k in ("channel", "thread_ts")}
        changed = {k: v for k, v in body.items() if k != "ts"}
        self.posted[index] = Posted(posted.method, kept | changed, posted.ts)
        self.updates.append(body)
        return 200, {"ok": True, "channel": body["channel"], "ts": posted.ts}, {}

    def _within_rate(self, channel: str) -> bool:
        sent = self._sent.setdefault(channel, deque())
        now = time.monotonic()
        while sent and now - sent[0] > BURST:
            sent.popleft()
        if len(sent) >= BURST:
            return False
        sent.append(now)
        return True


def _post_problem(body: dict[str, Any], channels: set[str]) -> str | None:
    if str(body.get("channel")) not in channels:
        return "channel_not_found"
    blocks = body.get("blocks")
    if not body.get("text") and not blocks:
        return "no_text"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            text = block.get("text") if isinstance(block, dict) else None
            if block.get("type") == "section" and (
                not isinstance(text, dict) or not 1 <= len(str(text.get("text", ""))) <= 3000
            ):
                return "invalid_blocks"
    return None


# -- the other direction: what Slack sends the app ---------------------------------------------


def signed(body: bytes, *, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    """Headers as Slack signs a request (https://docs.slack.dev/authentication/verifying-requests-from-slack)."""
    timestamp = str(int(time.time()) if at is None else at)
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/json",
    }


_EVENTS = 0


def message_event(
    text: str,
    *,
    user: str = "U0ALICE001",
    channel: str = "D0DIRECT01",
    channel_type: str = "im",
    ts: str | None = None,
    thread_ts: str | None = None,
    kind: str = "message",
    team: str = TEAM,
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An `event_callback` shaped as the documented `message.im` and `app_mention` examples
    (https://docs.slack.dev/reference/events/message.im, .../app_mention)."""
    global _EVENTS
    _EVENTS += 1
    ts = ts or f"{int(time.time())}.{_EVENTS:06d}"
    event: dict[str, Any] = {
        "type": kind,
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "team": team,
        **extra,
    }
    if kind == "message":
        event["channel_type"] = channel_type
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return {
        "token": "one-long-verification-token",
        "team_id": team,
        "api_app_id": "A0AGENTAPP",
        "event": event,
        "type": "event_callback",
        "authorizations": [
            {
                "team_id": team,
                "user_id": "U0AGENTBOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "event_id": event_id or f"Ev{_EVENTS:08d}",
        "event_time": int(time.time()),
    }


def block_actions(
    action_id: str, value: str, *, user: str = "U0ALICE001", team: str = TEAM
) -> bytes:
    """A `block_actions` payload, form-encoded as Slack sends it
    (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload)."""
    payload = {
        "type": "block_actions",
        "team": {"id": team, "domain": "example"},
        "user": {"id": user, "username": "someone", "team_id": team},
        "api_app_id": "A0AGENTAPP",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": "D0DIRECT01"},
        "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        "channel": {"id": "D0DIRECT01", "name": "directmessage"},
        "response_url": "https://hooks.slack.com/actions/A0AGENTAPP/1/abc",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "approval",
                "type": "button",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def form_signed(body: bytes, **kwargs: Any) -> dict[str, str]:
    headers = signed(body, **kwargs)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return headers
