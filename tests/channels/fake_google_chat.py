"""A local Google Chat: the keys that sign its requests, the events it sends, and the one API
method the agent calls, as strict as Google documents them.

Keys (https://developers.google.com/workspace/chat/verify-requests-from-chat): the Chat
service account's (`/jwk/chat`, as `.../service_accounts/v1/jwk/chat@system...`) and Google's
OpenID Connect keys (`/oauth2/v3/certs`), JWKS with RS256 keys by `kid`. `project_token` and
`url_token` mint the bearer tokens Chat sends for each "Authentication Audience".

`spaces.messages.create`
(https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/create):
- `POST /v1/spaces/{space}/messages`, an OAuth bearer token with the `chat.bot` scope
  (401 UNAUTHENTICATED without one, 403 PERMISSION_DENIED for another scope); the app must be
  in the space (404 NOT_FOUND).
- Query parameters `requestId`, `messageReplyOption`, `messageId`, `threadKey` and the
  client's `$alt`; any other is 400 INVALID_ARGUMENT, as Google's front end answers unknown
  names. A `requestId` seen before returns the message it created, creating nothing.
- The body is a `Message`: unknown fields are 400; it needs `text` or cards; at most 32,000
  bytes ("The maximum message size, including the message contents"); `thread.name` must be in
  the space. Without `messageReplyOption` the thread is ignored and a new one started ("Starts
  a new thread. Using this option ignores any thread ID or thread_key that's included").
- About one write a second per space (https://developers.google.com/workspace/chat/limits):
  past 60 in 60 s it is 429 RESOURCE_EXHAUSTED.
Errors are Google's JSON error shape (https://cloud.google.com/apis/design/errors).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.local_service import LocalService, send_json

CHAT_ISSUER = "chat@system.gserviceaccount.com"
CHAT_BOT_SCOPE = "https://www.googleapis.com/auth/chat.bot"
PROJECT_NUMBER = "123456789012"
ENDPOINT_URL = "https://agent.example.com/v1/channels/google-chat/events"
ADDON_CALLER = f"service-{PROJECT_NUMBER}@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
ACCESS_TOKEN = "ya29.local-chat-bot-token"
ROOM = "AAAAroom01"
DM = "DDDDdm0001"
MESSAGE_BYTES = 32_000
WRITES_PER_MINUTE = 60
_QUERY = frozenset({"requestId", "messageReplyOption", "messageId", "threadKey", "$alt"})
_REPLY_OPTIONS = {
    "MESSAGE_REPLY_OPTION_UNSPECIFIED": 0,
    "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD": 1,
    "REPLY_MESSAGE_OR_FAIL": 2,
}
# what `updateMask` may name (the API takes either spelling)
_UPDATABLE = frozenset(
    {"text", "attachment", "cards", "cards_v2", "cardsV2", "accessory_widgets",
     "accessoryWidgets", "quoted_message_metadata", "quotedMessageMetadata"}
)  # fmt: skip
_CAMEL = {"cards_v2": "cardsV2", "accessory_widgets": "accessoryWidgets",
          "quoted_message_metadata": "quotedMessageMetadata"}  # fmt: skip
_MARKUP = {"MARKUP_SYNTAX_UNSPECIFIED": 0, "MARKUP_SYNTAX_CHAT": 1, "MARKUP_SYNTAX_MARKDOWN": 2}
# `Message`'s fields that a create request may set
# (https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages)
_MESSAGE_FIELDS = frozenset(
    {
        "name", "text", "cards", "cardsV2", "thread", "fallbackText", "actionResponse",
        "attachment", "privateMessageViewer", "accessoryWidgets", "clientAssignedMessageId",
        "quotedMessageMetadata", "markupSyntax", "annotations", "silent",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Posted:
    space: str
    thread: str  # the thread it went into
    message: dict[str, Any]
    request_id: str | None
    reply_option: int
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:11] + "." + uuid.uuid4().hex[:11])

    @property
    def text(self) -> str:
        return str(self.message.get("text") or "")


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, str]:
        public = self.key.public_key().public_numbers()
        return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                "n": _b64(public.n), "e": _b64(public.e)}  # fmt: skip

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


@dataclass
class FakeGoogleChat(LocalService):
    spaces: set[str] = field(default_factory=lambda: {ROOM, DM})
    posted: list[Posted] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    key_fetches: int = 0
    chat_key: SigningKey = field(default_factory=SigningKey)
    google_key: SigningKey = field(default_factory=SigningKey)
    accepts: Callable[[str], bool] = lambda token: token == ACCESS_TOKEN
    _by_request: dict[str, Posted] = field(default_factory=dict)
    _writes: dict[str, deque[float]] = field(default_factory=dict)
    _failures: deque[tuple[int, str]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    thread_name: ClassVar[str] = "fake-google-chat"

    # -- tokens Chat sends ----------------------------------------------------------------

    @property
    def chat_keys_url(self) -> str:
        return f"{self.url}/jwk/chat"

    @property
    def google_keys_url(self) -> str:
        return f"{self.url}/oauth2/v3/certs"

    def project_token(self, audience: str = PROJECT_NUMBER, **changes: Any) -> str:
        """The JWT Chat sends when the audience is the project number."""
        now = int(time.time())
        claims = {"iss": CHAT_ISSUER, "aud": audience, "iat": now, "exp": now + 3600}
        return self.chat_key.sign(claims | changes)

    def url_token(
        self, audience: str = ENDPOINT_URL, email: str = CHAT_ISSUER, **changes: Any
    ) -> str:
        """The OIDC ID token Chat sends when the audience is the endpoint URL."""
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "azp": "113067284318212945836",
            "sub": "113067284318212945836",
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        return self.google_key.sign(claims | changes)

    # -- what the agent posted --------------------------------------------------------------

    def fail(
        self, status: int = 503, message: str = "The service is currently unavailable."
    ) -> None:
        with self._lock:
            self._failures.append((status, message))

    def in_space(self, space: str) -> list[Posted]:
        with self._lock:
            return [p for p in self.posted if p.space == space]

    # -- the server -------------------------------------------------------------------------

    def _handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        path = urllib.parse.urlsplit(handler.path).path
        keys = {"/jwk/chat": self.chat_key, "/oauth2/v3/certs": self.google_key}.get(path)
        if keys is None:
            send_json(handler, 404, _error(404, "Not Found"))
            return
        with self._lock:
            self.key_fetches += 1
        send_json(handler, 200, {"keys": [keys.jwk()]}, {"Cache-Control": "public, max-age=20000"})

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        taken = self._taken(handler, 4)
        if taken is not None:
            path, query, raw = taken
            send_json(handler, *self._create(path[2], query, raw))

    def _taken(
        self, handler: BaseHTTPRequestHandler, segments: int
    ) -> tuple[list[str], dict[str, list[str]], bytes] | None:
        """A messages call's path (`v1/spaces/S/messages[/M]`), query and body, once its bearer
        token is accepted; else None, answered 404 or 401 as Google answers."""
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(handler.path)
        path = split.path.strip("/").split("/")
        if len(path) != segments or path[:2] != ["v1", "spaces"] or path[3] != "messages":
            send_json(handler, 404, _error(404, f"no method at {split.path}"))
            return None
        scheme, _, token = (handler.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.accepts(token.strip()):
            send_json(handler, 401, _error(401, "Request had invalid authentication credentials. "
                      "Expected OAuth 2 access token, login cookie or other valid authentication "
                      "credential."))  # fmt: skip
            return None
        return path, urllib.parse.parse_qs(split.query), raw

    def _handle_update(self, handler: BaseHTTPRequestHandler) -> None:
        """`spaces.messages.update` / `patch`
        (https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/update):
        `updateMask` is required and names updatable fields; the message must exist (404)."""
        taken = self._taken(handler, 5)
        if taken is None:
            return
        parts, query, raw = taken
        mask = {f.strip() for f in query.get("updateMask", [""])[0].split(",") if f.strip()}
        if not mask or not mask <= _UPDATABLE:
            send_json(handler, 400, _error(400, "updateMask must name updatable fields"))
            return
        try:
            message = json.loads(raw or b"{}")
        except ValueError:
            send_json(handler, 400, _error(400, "Invalid JSON payload received."))
            return
        problem = _message_problem(message, parts[2]) if isinstance(message, dict) else "no"
        if problem is not None:
            send_json(handler, 400, _error(400, str(problem)))
            return
        with self._lock:
            found = next(
                (
                    (i, p)
                    for i, p in enumerate(self.posted)
                    if p.space == parts[2] and p.name == parts[4]
                ),
                None,
            )
            if found is None:
                send_json(handler, 404, _error(404, "Requested entity was not found."))
                return
            index, posted = found
            fields = {_CAMEL.get(f, f) for f in mask}
            changed = {k: v for k, v in message.items() if k in fields}
            kept = {k: v for k, v in posted.message.items() if k not in fields}
            self.posted[index] = replace(posted, message=kept | changed)
            self.updates.append(message)
            answer = _resource(self.posted[index])
        send_json(handler, 200, answer)

    def delete(self, posted: Posted) -> None:
        """A person deletes the app's message."""
        with self._lock:
            self.posted = [p for p in self.posted if p.name != posted.name]

    def _create(
        self, space: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        unknown = set(query) - _QUERY
        if unknown:
            return 400, _error(
                400, f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}"
            )
        option = _enum(query.get("messageReplyOption", ["0"])[0], _REPLY_OPTIONS)
        if option is None:
            return 400, _error(400, "Invalid value at 'message_reply_option'")
        try:
            message = json.loads(raw or b"{}")
        except ValueError:
            return 400, _error(400, "Invalid JSON payload received.")
        if not isinstance(message, dict):
            return 400, _error(400, "Invalid JSON payload received. Expected an object.")
        problem = _message_problem(message, space)
        if problem is not None:
            return 400, _error(400, problem)
        request_id = query.get("requestId", [None])[0]
        with self._lock:
            if self._failures:
                return self._failures[0][0], _error(*self._failures.popleft())
            if space not in self.spaces:
                return 404, _error(404, "Requested entity was not found.")
            if request_id is not None and request_id in self._by_request:
                return 200, _resource(self._by_request[request_id])
            writes = self._writes.setdefault(space, deque())
            now = time.monotonic()
            while writes and now - writes[0] > 60:
                writes.popleft()
            if len(writes) >= WRITES_PER_MINUTE:
                return 429, _error(429, "Resource has been exhausted (e.g. check quota).")
            writes.append(now)
            asked = str((message.get("thread") or {}).get("name") or "")
            thread = asked.rpartition("/")[2] if asked and option != 0 else uuid.uuid4().hex[:11]
            posted = Posted(space, thread, message, request_id, option)
            self.posted.append(posted)
            if request_id is not None:
                self._by_request[request_id] = posted
        return 200, _resource(posted)


def _enum(value: str, names: dict[str, int]) -> int | None:
    if value in names:
        return names[value]
    if value.isdigit() and int(value) in names.values():
        return int(value)
    return None


def _message_problem(message: dict[str, Any], space: str) -> str | None:
    unknown = set(message) - _MESSAGE_FIELDS
    if unknown:
        return f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r} at 'message'"
    if _size(message) > MESSAGE_BYTES:
        return f"Message size exceeds the limit of {MESSAGE_BYTES} bytes."
    if not str(message.get("text") or "").strip() and not message.get("cardsV2"):
        return "Message cannot be empty. Discarded message with no text, cards or attachments."
    if "markupSyntax" in message and _enum(str(message["markupSyntax"]), _MARKUP) is None:
        return "Invalid value at 'message.markup_syntax'"
    thread = message.get("thread")
    if thread is not None:
        name = thread.get("name") if isinstance(thread, dict) else None
        if not isinstance(name, str) or not name.startswith(f"spaces/{space}/threads/"):
            return "Invalid thread name: a thread must be in the message's space."
    for card in message.get("cardsV2") or []:
        if (
            not isinstance(card, dict)
            or not card.get("cardId")
            or not isinstance(card.get("card"), dict)
        ):
            return "Each element of cardsV2 needs a cardId and a card."
        for section in card["card"].get("sections") or []:
            for widget in section.get("widgets") or []:
                for button in (widget.get("buttonList") or {}).get("buttons") or []:
                    action = ((button.get("onClick") or {}).get("action")) or {}
                    if not button.get("text") or not action.get("function"):
                        return "A button needs text and an onClick action with a function."
                    for pair in action.get("parameters") or []:
                        if not isinstance(pair.get("key"), str) or not isinstance(
                            pair.get("value"), str
                        ):
                            return "Action parameters are key and value strings."
    return None


def _size(message: dict[str, Any]) -> int:
    """The message's contents in bytes: its text as UTF-8, and its other fields as JSON."""
    rest = {k: v for k, v in message.items() if k != "text"}
    text = str(message.get("text") or "")
    return len(text.encode()) + len(json.dumps(rest, ensure_ascii=False).encode())


def _resource(posted: Posted) -> dict[str, Any]:
    return posted.message | {
        "name": f"spaces/{posted.space}/messages/{posted.name}",
        "sender": {"name": "users/app", "type": "BOT"},
        "createTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        "thread": {"name": f"spaces/{posted.space}/threads/{posted.thread}"},
        "space": {"name": f"spaces/{posted.space}"},
    }


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
           503: "UNAVAILABLE"}  # fmt: skip


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}


# -- events, shaped as Google documents them --------------------------------------------------

_MESSAGES = 0


def _user(person: str) -> dict[str, Any]:
    return {"name": f"users/{person}", "displayName": "Izumi", "email": f"{person}@example.com",
            "type": "HUMAN", "domainId": "7ab4c2"}  # fmt: skip


def _space(space: str) -> dict[str, Any]:
    if space == DM:
        return {"name": f"spaces/{DM}", "type": "DM", "spaceType": "DIRECT_MESSAGE",
                "singleUserBotDm": True, "spaceThreadingState": "UNTHREADED_MESSAGES"}  # fmt: skip
    return {"name": f"spaces/{space}", "type": "ROOM", "spaceType": "SPACE",
            "displayName": "Support", "spaceThreadingState": "THREADED_MESSAGES"}  # fmt: skip


def message_event(
    text: str,
    *,
    person: str = "12345678901234567890",
    space: str = ROOM,
    thread: str | None = None,
    name: str | None = None,
    addon: bool = False,
    bot: bool = False,
) -> dict[str, Any]:
    """A MESSAGE interaction event: in a space the app is mentioned
    (https://developers.google.com/workspace/chat/api/reference/rest/v1/Event), or the add-on
    event object carrying the same message (`chat.messagePayload`)."""
    global _MESSAGES
    _MESSAGES += 1
    thread = thread or f"thread{_MESSAGES:05d}"
    sender = _user(person) | ({"type": "BOT", "name": "users/bot-1"} if bot else {})
    in_room = space != DM
    message: dict[str, Any] = {
        "name": name or f"spaces/{space}/messages/m{_MESSAGES:06d}.m{_MESSAGES:06d}",
        "sender": sender,
        "createTime": "2026-11-30T12:00:00.100000Z",
        "text": f"@Agent {text}" if in_room else text,
        "argumentText": f" {text}" if in_room else text,
        "thread": {"name": f"spaces/{space}/threads/{thread}"},
        "space": {"name": f"spaces/{space}"},
    }
    if in_room:
        message["annotations"] = [
            {"type": "USER_MENTION", "startIndex": 0, "length": 6,
             "userMention": {"user": {"name": "users/app", "type": "BOT"}, "type": "MENTION"}}
        ]  # fmt: skip
        message["threadReply"] = thread is not None
    if addon:
        return _addon({"messagePayload": {"message": message, "space": _space(space)}}, sender)
    return {
        "type": "MESSAGE",
        "eventTime": "2026-11-30T12:00:00.100000Z",
        "message": message,
        "space": _space(space),
        "thread": message["thread"],
        "user": sender,
        "common": {"userLocale": "en", "hostApp": "CHAT"},
    }


def _addon(
    payload: dict[str, Any], user: dict[str, Any], parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Workspace add-on event object
    (https://developers.google.com/workspace/add-ons/concepts/event-objects)."""
    common: dict[str, Any] = {"userLocale": "en", "hostApp": "CHAT", "platform": "WEB"}
    if parameters:
        common["parameters"] = parameters
    return {
        "commonEventObject": common,
        "authorizationEventObject": {"systemIdToken": "eyJ..."},
        "chat": {"user": user, "eventTime": "2026-11-30T12:00:00.100000Z", **payload},
    }


def added_event(
    space: str = ROOM, *, person: str = "12345678901234567890", addon: bool = False
) -> dict[str, Any]:
    if addon:
        return _addon({"addedToSpacePayload": {"space": _space(space)}}, _user(person))
    return {"type": "ADDED_TO_SPACE", "eventTime": "2026-11-30T12:00:00.100000Z",
            "space": _space(space), "user": _user(person)}  # fmt: skip


def removed_event(space: str = ROOM, *, addon: bool = False) -> dict[str, Any]:
    if addon:
        return _addon({"removedFromSpacePayload": {"space": _space(space)}}, _user("1"))
    return {"type": "REMOVED_FROM_SPACE", "eventTime": "2026-11-30T12:00:00.100000Z",
            "space": _space(space), "user": _user("1")}  # fmt: skip


def click_event(
    parameters: dict[str, str],
    *,
    person: str = "12345678901234567890",
    space: str = ROOM,
    function: str = "approval",
    addon: bool = False,
) -> dict[str, Any]:
    """A CARD_CLICKED event for a button whose action is `function` with `parameters`."""
    card_message = {"name": f"spaces/{space}/messages/card.card",
                    "sender": {"name": "users/app", "type": "BOT"}}  # fmt: skip
    if addon:
        payload = {"buttonClickedPayload": {"message": card_message, "space": _space(space)}}
        return _addon(payload, _user(person), parameters)
    return {
        "type": "CARD_CLICKED",
        "eventTime": "2026-11-30T12:00:00.100000Z",
        "message": card_message,
        "space": _space(space),
        "user": _user(person),
        "action": {
            "actionMethodName": function,
            "parameters": [{"key": k, "value": v} for k, v in parameters.items()],
        },
        "common": {"invokedFunction": function, "parameters": parameters},
    }


def headers(token: str) -> dict[str, str]:
    """What Chat's requests carry (https://developers.google.com/workspace/chat/verify-requests-from-chat)."""
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "User-Agent": "Google-Dynamite",
    }
