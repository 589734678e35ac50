"""A local Telegram Bot API: the methods the agent calls, as strict as Telegram about them, and
updates shaped as the Bot API documents them.

Requests (https://core.telegram.org/bots/api#making-requests): `POST /bot<token>/<method>`
with a JSON or form body; an unknown token is `401 Unauthorized`. Every answer is
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": "..."}`, with
N as the HTTP status too; a rate limit adds `parameters.retry_after` and a `Retry-After`
header. `sendMessage` (https://core.telegram.org/bots/api#sendmessage): `chat_id` must be a chat
the bot is in (`400 Bad Request: chat not found`), `text` 1-4096 characters (`message text is
empty`, `message is too long`); `message_thread_id` must be a topic of the chat.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from tests.local_service import LocalService, send_json

BOT_ID = 7000000001
TOKEN = f"{BOT_ID}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "webhook-secret_0123456789"
PRIVATE_CHAT = 111222333
GROUP = -1001234567890
TOPIC = 4990


@dataclass(frozen=True)
class Sent:
    method: str
    body: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")


@dataclass
class FakeTelegram(LocalService):
    chats: dict[int, set[int]] = field(
        default_factory=lambda: {PRIVATE_CHAT: set(), GROUP: {TOPIC}}
    )
    sent: list[Sent] = field(default_factory=list)
    _failures: deque[tuple[int, str, int | None]] = field(default_factory=deque)
    _fail_at: dict[int, tuple[int, str, int | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    thread_name: ClassVar[str] = "fake-telegram"

    def fail(
        self,
        status: int = 502,
        description: str = "Bad Gateway",
        retry_after: int | None = None,
        *,
        after: int = 0,
    ) -> None:
        """The next `sendMessage` fails; with `after`, the first once `after` are sent."""
        with self._lock:
            if after:
                self._fail_at[after] = (status, description, retry_after)
            else:
                self._failures.append((status, description, retry_after))

    def in_chat(self, chat: int) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.body.get("chat_id") == chat]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        _, _, rest = handler.path.partition("/bot")
        token, _, method = rest.partition("/")
        if token != TOKEN:
            send_json(handler, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        kind = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind == "application/json":
            body = json.loads(raw or b"{}")
        else:
            body = {k: _maybe_json(v) for k, v in urllib.parse.parse_qsl(raw.decode())}
        status, answer, headers = self._answer(method.split("?")[0].lower(), body)
        send_json(handler, status, answer, headers)

    def _answer(
        self, method: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method not in ("sendmessage", "sendchataction"):
            return (
                404,
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                {},
            )
        with self._lock:
            messages = sum(1 for s in self.sent if s.method == "sendmessage")
            if method == "sendmessage" and messages in self._fail_at:
                self._failures.append(self._fail_at.pop(messages))
            if method == "sendmessage" and self._failures:  # scripted outages hit messages
                status, description, retry = self._failures.popleft()
                answer: dict[str, Any] = {
                    "ok": False,
                    "error_code": status,
                    "description": description,
                }
                if retry is not None:
                    answer["parameters"] = {"retry_after": retry}
                    return status, answer, {"Retry-After": str(retry)}
                return status, answer, {}
            problem = _problem(method, body, self.chats)
            if problem is not None:
                return (
                    400,
                    {"ok": False, "error_code": 400, "description": f"Bad Request: {problem}"},
                    {},
                )
            self.sent.append(Sent(method, body))
        if method == "sendchataction":
            return 200, {"ok": True, "result": True}, {}
        result = {"message_id": len(self.sent), "date": int(time.time()), "text": body["text"]}
        return 200, {"ok": True, "result": result}, {}


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _problem(method: str, body: dict[str, Any], chats: dict[int, set[int]]) -> str | None:
    chat = body.get("chat_id")
    if chat not in chats:
        return "chat not found"
    topic = body.get("message_thread_id")
    if topic is not None and topic not in chats[chat]:
        return "message thread not found"
    if method == "sendmessage":
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return "message text is empty"
        if len(text) > 4096:  # code points, as the Bot API server counts
            return "message is too long"
        markup = _markup_problem(body.get("reply_markup"))
        if markup is not None:
            return markup
        if "parse_mode" in body and "entities" in body:
            return "can't parse entities: entities and parse_mode are mutually exclusive"
        return _entities_problem(body.get("entities"), len(text.encode("utf-16-le")) // 2)
    return None


def _markup_problem(markup: Any) -> str | None:
    """An inline keyboard (https://core.telegram.org/bots/api#inlinekeyboardmarkup): rows of
    buttons, each with `text` and exactly one action; `callback_data` is 1-64 bytes."""
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return "can't parse reply keyboard markup JSON object"
    for button in (b for row in rows for b in row):
        if not isinstance(button, dict) or not str(button.get("text") or "").strip():
            return "text buttons are unallowed in the inline keyboard"
        actions = [k for k in ("callback_data", "url", "switch_inline_query") if k in button]
        if len(actions) != 1:
            return "can't parse inline keyboard button: exactly one action is required"
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= 64:
            return "BUTTON_DATA_INVALID"
    return None


# https://core.telegram.org/bots/api#messageentity
_ENTITY_TYPES = frozenset(
    {
        "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold",
        "italic", "underline", "strikethrough", "spoiler", "blockquote", "expandable_blockquote",
        "code", "pre", "text_link", "text_mention", "custom_emoji", "date_time",
    }
)  # fmt: skip


def _entities_problem(entities: Any, length: int) -> str | None:
    """Offsets and lengths are UTF-16 code units within the text; a `text_link` needs its
    `url`. Telegram refuses anything else as "can't parse entities"."""
    if entities is None:
        return None
    if not isinstance(entities, list):
        return "can't parse entities: entities must be an array"
    for entity in entities:
        if not isinstance(entity, dict) or entity.get("type") not in _ENTITY_TYPES:
            return "can't parse entities: unsupported entity type"
        offset, size = entity.get("offset"), entity.get("length")
        if not (isinstance(offset, int) and isinstance(size, int)) or offset < 0 or size <= 0:
            return "can't parse entities: bad offset or length"
        if offset + size > length:
            return "can't parse entities: entity beyond the end of the text"
        if entity["type"] == "text_link" and not str(entity.get("url") or "").startswith(
            ("http://", "https://", "tg://")
        ):
            return "can't parse entities: wrong url"
    return None


_UPDATES = 804193870


def text_update(
    text: str,
    *,
    user: int = 123456789,
    chat: int = PRIVATE_CHAT,
    topic: int | None = None,
    message_id: int | None = None,
    is_bot: bool = False,
    mention: bool | None = None,
) -> dict[str, Any]:
    """An update shaped as the Bot API's `Update` and `Message`
    (https://core.telegram.org/bots/api#update, #message)."""
    global _UPDATES
    _UPDATES += 1
    chat_object: dict[str, Any] = (
        {"id": chat, "first_name": "Ada", "type": "private"}
        if chat > 0
        else {"id": chat, "title": "Team", "is_forum": True, "type": "supergroup"}
    )
    message: dict[str, Any] = {
        "message_id": message_id or _UPDATES % 100000,
        "from": {"id": user, "is_bot": is_bot, "first_name": "Ada", "language_code": "en"},
        "chat": chat_object,
        "date": int(time.time()),
        "text": text,
    }
    if topic is not None:
        message |= {"message_thread_id": topic, "is_topic_message": True}
    if mention if mention is not None else chat < 0:  # in a group, addressed to the bot
        message["text"] = f"@agent_bot {text}"
        message["entities"] = [{"type": "mention", "offset": 0, "length": 10}]
    return {"update_id": _UPDATES, "message": message}


def callback_update(
    data: str, *, user: int, chat: int = PRIVATE_CHAT, message_id: int = 1
) -> dict[str, Any]:
    """A button of the bot's message pressed (https://core.telegram.org/bots/api#callbackquery)."""
    global _UPDATES
    _UPDATES += 1
    person = {"id": user, "is_bot": False, "first_name": "Ada"}
    chat_object = {"id": chat, "type": "private" if chat > 0 else "supergroup"}
    message = {
        "message_id": message_id,
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "Agent", "username": "agent_bot"},
        "chat": chat_object,
        "date": int(time.time()),
        "text": "I need your approval to go on.",
    }
    query = {"id": str(4382000000000000000 + _UPDATES), "from": person, "message": message,
             "chat_instance": "-8360000000000000000", "data": data}  # fmt: skip
    return {"update_id": _UPDATES, "callback_query": query}


def headers(secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret}
