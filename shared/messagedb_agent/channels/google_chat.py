"""Google Chat: interaction events in, `spaces.messages.create` out, as Google documents them.

In (`GoogleChatInbound`, behind `POST /v1/channels/google-chat/events`):

- Every request carries `Authorization: Bearer <JWT>`, verified against Google's published keys
  before anything else; one that fails gets a 401 and appends nothing
  (https://developers.google.com/workspace/chat/verify-requests-from-chat). Which token comes
  depends on the app's "Authentication Audience":
  - a project number: a JWT issued (`iss`) by `chat@system.gserviceaccount.com`, signed with
    that account's keys, `aud` the project number;
  - the endpoint URL: a Google-signed OIDC ID token (`iss` accounts.google.com), `aud` the URL,
    whose `email` is the caller: `chat@system.gserviceaccount.com`, or for an app built as a
    Workspace add-on its per-project `service-<number>@gcp-sa-gsuiteaddons...` account. The
    email is checked too: any Google account can get a token for our URL.
  Keys are fetched once and kept (PyJWT's JWKS client; google-auth refetches on every call).
- Both event formats are read: the Chat API's interaction event (`{"type": "MESSAGE", ...}`)
  and the Workspace add-on event object (`{"chat": {"messagePayload": ...}, ...}`), which new
  apps receive (https://developers.google.com/workspace/chat/receive-respond-interactions).
- `MESSAGE`: every DM message, and in a space a message that mentions the app; its
  `argumentText` (the mention stripped) is appended once: the message's resource name is its
  key. A DM is one conversation; in a space, each thread is one per person.
- `ADDED_TO_SPACE` is answered with a greeting (and the message that added it, if any, is
  taken); `REMOVED_FROM_SPACE` needs nothing (the app can no longer post there).
- `CARD_CLICKED`: an approval card's button, decided as the person who clicked.

Out (`GoogleChatReplies`, the `google-chat:` reply address): `spaces.messages.create` through
the official `google-apps-chat` client over REST, as the function's service account
(scope `chat.bot`), with the SDK's own retries off (the engine records and retries each
attempt). Each message carries a `requestId` derived from the delivery and the part, so a
retried delivery gets the message already created instead of a second one; in a space,
`messageReplyOption` keeps it in the person's thread (without it, the thread is ignored)
(https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/create).
Text is Markdown (`markupSyntax`), in messages of at most 32,000 bytes.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from messagedb_agent.channels.callback import DeliveryError
from messagedb_agent.channels.conversations import ChannelMessage, Conversations
from messagedb_agent.channels.inbound import Answer, Endpoint, json_object
from messagedb_agent.channels.replies import address_parts, address_uri
from messagedb_agent.events.ids import channel_key, channel_user
from messagedb_agent.threads.errors import ThreadError

log = logging.getLogger(__name__)

SCHEME = "google-chat"
CHAT_ISSUER = "chat@system.gserviceaccount.com"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
# Where Google publishes the keys: the Chat service account's, and its OpenID Connect ones
# (https://www.googleapis.com/oauth2/v3/certs is `jwks_uri` in
# https://accounts.google.com/.well-known/openid-configuration).
CHAT_KEYS_URL = f"https://www.googleapis.com/service_accounts/v1/jwk/{CHAT_ISSUER}"
OIDC_KEYS_URL = "https://www.googleapis.com/oauth2/v3/certs"
CHAT_BOT_SCOPE = "https://www.googleapis.com/auth/chat.bot"
MESSAGE_BYTES = 32_000  # "The maximum message size, including the message contents"
ADDON_CALLER_DOMAIN = "@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
_LEEWAY_SECONDS = 30
_APPROVE, _DECLINE = "approve", "decline"
_GREETING = (
    "Hi! I'm an AI assistant. Message me here, or mention me in a space, and I'll answer in "
    "the thread."
)
_TOO_FAST = "You're sending messages faster than I can keep up with; please wait {} seconds."
_UNVERIFIED = Answer(
    401,
    {"error": {"code": "unauthorized", "message": "Google's bearer token is missing or wrong."}},
)
_NOTHING = Answer(200, {})


@dataclass(frozen=True, slots=True)
class ChatAddress:
    """Where a conversation's replies go: a space, and its thread (`-`: none, a DM)."""

    space: str  # the id in `spaces/<id>`
    thread: str  # the id in `spaces/<space>/threads/<id>`, or `-`

    def uri(self) -> str:
        return address_uri(SCHEME, self.space, self.thread)

    @classmethod
    def parse(cls, uri: str) -> ChatAddress:
        return cls(*address_parts(uri, SCHEME, 2))


# -- verifying Google's token ----------------------------------------------------------------


class ChatTokens:
    """Verifies the bearer token of a request from Google Chat; one per process."""

    def __init__(self, audience: str, caller: str = CHAT_ISSUER, keys_url: str | None = None):
        import jwt  # PyJWT and cryptography load with the first Chat request

        self._audience = audience
        self._caller = caller
        self._by_project = audience.isdigit()
        default = CHAT_KEYS_URL if self._by_project else OIDC_KEYS_URL
        # Google rotates keys about daily and publishes new ones ahead: an hour's cache is safe,
        # and a token naming a key not yet cached refetches, at most once in 30 s (PyJWKClient's
        # cooldown), so forged key ids cannot make every request a fetch from Google.
        self._keys = jwt.PyJWKClient(keys_url or default, cache_jwk_set=True, lifespan=3600)

    def verified(self, authorization: str) -> bool:
        import jwt

        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            key = self._keys.get_signing_key_from_jwt(token.strip()).key
            claims = jwt.decode(
                token.strip(),
                key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=CHAT_ISSUER if self._by_project else GOOGLE_ISSUERS,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as error:
            log.warning("could not fetch Google's keys to verify a Chat request: %s", error)
            return False
        except (jwt.InvalidTokenError, jwt.PyJWKClientError, ValueError, TypeError):
            return False
        if self._by_project:
            return True
        return claims.get("email") == self._caller and claims.get("email_verified") is True


# -- events in --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """An interaction event, whichever format it came in."""

    kind: str  # MESSAGE, ADDED_TO_SPACE, REMOVED_FROM_SPACE, CARD_CLICKED, or another
    space: dict[str, Any]
    message: dict[str, Any] | None
    user: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    addon: bool = False


_ADDON_PAYLOADS = {
    "messagePayload": "MESSAGE",
    "addedToSpacePayload": "ADDED_TO_SPACE",
    "removedFromSpacePayload": "REMOVED_FROM_SPACE",
    "buttonClickedPayload": "CARD_CLICKED",
}


def event_of(body: dict[str, Any]) -> ChatEvent:
    chat = body.get("chat")
    if isinstance(chat, dict):  # a Workspace add-on event object: the kind is its payload's
        kind, source = next(
            (
                (kind, payload)
                for key, kind in _ADDON_PAYLOADS.items()
                if isinstance(payload := chat.get(key), dict)
            ),
            ("OTHER", {}),
        )
        user, addon = chat.get("user"), True
        parameters = _strings(json_object(body.get("commonEventObject")).get("parameters"))
    else:
        kind, source, user, addon = str(body.get("type") or "OTHER"), body, body.get("user"), False
        parameters = _strings(json_object(body.get("common")).get("parameters"))
        for pair in json_object(body.get("action")).get("parameters") or []:
            if isinstance(pair, dict) and isinstance(pair.get("key"), str):
                parameters.setdefault(pair["key"], str(pair.get("value", "")))
    message = json_object(source.get("message"))
    space = json_object(source.get("space")) or json_object(message.get("space"))
    return ChatEvent(kind, space, message or None, json_object(user), parameters, addon)


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _id(name: Any, collection: str) -> str | None:
    """`abc` from `spaces/abc` (one path segment, nothing else)."""
    if not isinstance(name, str):
        return None
    prefix, _, rest = name.partition("/")
    if prefix != collection or not rest or "/" in rest or ":" in rest:
        return None
    if not rest.isprintable() or rest != rest.strip():  # nothing `channel_user` would refuse
        return None
    return rest


def is_dm(space: dict[str, Any]) -> bool:
    return (
        space.get("spaceType") == "DIRECT_MESSAGE"
        or space.get("type") == "DM"
        or space.get("singleUserBotDm") is True
    )


def message_of(event: ChatEvent) -> ChannelMessage | None:
    """The person's message an event carries, or None (bots, no text, malformed names)."""
    message = event.message
    if message is None:
        return None
    sender = json_object(message.get("sender")) or event.user
    if sender.get("type") == "BOT":
        return None
    space = _id(event.space.get("name"), "spaces")
    person = _id(sender.get("name"), "users")
    name = message.get("name")
    text = message.get("argumentText")
    if not isinstance(text, str) or not text.strip():
        text = message.get("text")
    if not (space and person and isinstance(name, str) and isinstance(text, str)):
        return None
    if not name.startswith(f"spaces/{space}/messages/") or not text.strip():
        return None
    thread_name = json_object(message.get("thread")).get("name")
    thread = "-"
    if not is_dm(event.space) and isinstance(thread_name, str):
        owner, _, tail = thread_name.rpartition("/threads/")
        if owner == f"spaces/{space}" and tail and "/" not in tail:
            thread = tail
    return ChannelMessage(
        user=channel_user(SCHEME, "users", person),
        thread_key=channel_key(SCHEME, space, thread),
        message_key=channel_key(SCHEME, name),
        text=text.strip(),
        reply_to=ChatAddress(space, thread).uri(),
        title=" ".join(text.split())[:80],
    )


def said(text: str, *, addon: bool) -> Answer:
    """A message posted as the request's own answer, in the event's thread."""
    message = {"text": text}
    if addon:
        action = {"chatDataAction": {"createMessageAction": {"message": message}}}
        return Answer(200, {"hostAppDataAction": action})
    return Answer(200, message)


class GoogleChatInbound:
    def __init__(self, tokens: ChatTokens, conversations: Conversations) -> None:
        self._tokens = tokens
        self._conversations = conversations

    def endpoints(self) -> Mapping[str, Endpoint]:
        return {"events": self.events}

    def events(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not self._tokens.verified(authorization):
            return _UNVERIFIED
        try:
            data = json.loads(body)
        except ValueError:
            return Answer(400, {"error": {"code": "invalid_json", "message": "Not JSON."}})
        if not isinstance(data, dict):
            return Answer(400, {"error": {"code": "invalid_json", "message": "Not an object."}})
        event = event_of(data)
        if event.kind == "CARD_CLICKED":
            return self._clicked(event)
        if event.kind == "REMOVED_FROM_SPACE":
            log.info("removed from Google Chat space %s", event.space.get("name"))
            return _NOTHING
        if event.kind not in ("MESSAGE", "ADDED_TO_SPACE"):
            return _NOTHING  # app commands, app home, widget updates: not used
        message = message_of(event)
        answer = self._take(message, event.addon) if message is not None else None
        if event.kind == "ADDED_TO_SPACE" and answer is None:
            return said(_GREETING, addon=event.addon)
        return answer or _NOTHING

    def _take(self, message: ChannelMessage, addon: bool) -> Answer | None:
        """Append the message; a refusal is answered in words, in the request's answer."""
        try:
            taken = self._conversations.said(message)
        except ThreadError as error:  # a message too long, say (an ended one starts anew)
            return said(str(error), addon=addon)
        if taken.retry_after is not None:
            return said(_TOO_FAST.format(taken.retry_after), addon=addon)
        return None

    def _clicked(self, event: ChatEvent) -> Answer:
        decision = event.parameters.get("decision")
        thread, call = event.parameters.get("thread"), event.parameters.get("call")
        person = _id(event.user.get("name"), "users")
        if decision not in (_APPROVE, _DECLINE) or not (thread and call and person):
            return _NOTHING
        user = channel_user(SCHEME, "users", person)
        try:
            new = self._conversations.decide(user, thread, call, approve=decision == _APPROVE)
        except ThreadError as error:  # another person's thread, decided already, expired
            log.info("google chat approval by %s for %s not taken: %s", user, call, error)
            return said(
                f"That button isn't yours to press, or it's too late: {error}", addon=event.addon
            )
        if not new:
            return _NOTHING
        return said("Approved." if decision == _APPROVE else "Declined.", addon=event.addon)


# -- replies ----------------------------------------------------------------------------------


def utf8_len(text: str) -> int:
    return len(text.encode())


def parts(text: str, limit: int = MESSAGE_BYTES - 1000) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes (room left for the rest of the message), cut at a
    paragraph, else a line, else a space."""
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if utf8_len(rest) <= limit:
            pieces.append(rest)
            break
        fits = len(rest.encode()[:limit].decode("utf-8", "ignore"))
        window = rest[:fits]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < fits // 2:
            cut = fits
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return pieces


def no_mentions(markdown: str) -> str:
    """The text with Chat's mention syntax (`<users/all>`, `<users/123>`) broken by a word
    joiner, so a model's reply can never notify a space."""
    return markdown.replace("<users/", "<\u2060users/")


def request_id(delivery_id: str, part: int) -> str:
    """The same UUID for the same part of the same delivery, whichever attempt sends it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SCHEME}:{delivery_id}/{part}"))


def approval_card(payload: dict[str, Any], action: str) -> dict[str, Any]:
    """A card per asked call with Approve and Decline buttons; `action` is the function a
    click invokes (a name for a Chat API app, the endpoint URL for an add-on). Field names are
    the client's (snake_case); it sends them as the API's camelCase JSON."""
    thread = str(payload.get("thread_id"))
    sections: list[dict[str, Any]] = []
    for asked in payload.get("approvals") or []:
        call, tool = str(asked.get("tool_call_id")), str(asked.get("tool"))
        arguments = json.dumps(asked.get("arguments") or {}, ensure_ascii=False)[:2000]
        again = (
            " again (its first run may or may not have happened)" if asked.get("retry_of") else ""
        )
        text = f"May I run <b>{_html(tool)}</b>{again}?<br><code>{_html(arguments)}</code>"

        def button(label: str, decision: str, call: str = call) -> dict[str, Any]:
            parameters = [
                {"key": "decision", "value": decision},
                {"key": "thread", "value": thread},
                {"key": "call", "value": call},
            ]
            return {
                "text": label,
                "on_click": {"action": {"function": action, "parameters": parameters}},
            }

        sections.append(
            {
                "widgets": [
                    {"text_paragraph": {"text": text}},
                    {
                        "button_list": {
                            "buttons": [button("Approve", _APPROVE), button("Decline", _DECLINE)]
                        }
                    },
                ]
            }
        )
    return {
        "card_id": "approval",
        "card": {"header": {"title": "Approval needed"}, "sections": sections},
    }


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Google's error statuses a person must fix (credentials, the app's access to the space) or that
# pass: retried, so the reply goes out once they have. 400 and 404 never pass.
_FINAL_STATUSES = frozenset({400, 404, 409, 413})


class GoogleChatReplies:
    """A `ReplySender` for `google-chat:` addresses."""

    def __init__(
        self,
        api_endpoint: str,
        timeout: float = 10.0,
        *,
        card_action: str = "approval",
        credentials: Any = None,
    ) -> None:
        self._endpoint = api_endpoint
        self._timeout = timeout
        self._action = card_action
        self._credentials = credentials  # None: the function's service account (ADC)
        self._client: Any = None

    def send(self, url: str, body: bytes, delivery_id: str, *, skip: int = 0) -> int:
        """Every part, each with its own `requestId`: a part an earlier attempt created is
        returned by Chat, not created again, so `skip` is not needed."""
        try:
            address = ChatAddress.parse(url)
            payload = json.loads(body)
        except ValueError as error:
            raise DeliveryError(str(error), retryable=False) from error
        if payload.get("type") == "approval_requested":
            messages = [
                {
                    "text": "I need your approval to go on.",
                    "cards_v2": [approval_card(payload, self._action)],
                }
            ]
        else:
            text = no_mentions(str((payload.get("reply") or {}).get("text") or ""))
            messages = [
                {"text": piece, "markup_syntax": "MARKUP_SYNTAX_MARKDOWN"} for piece in parts(text)
            ]
        replaces = payload.get("replaces")
        for number, message in enumerate(messages):
            if number == 0 and isinstance(replaces, str) and self._replaced(replaces, message):
                continue  # the busy notice became the reply's first part
            self.create(address, message, request_id(delivery_id, number))
        return 200 if messages else 204

    def notice(self, url: str, text: str, key: str) -> str:
        """Post `text` in the conversation; its resource name, for the reply to replace."""
        return self.create(ChatAddress.parse(url), {"text": text}, request_id(f"notice/{key}", 0))

    def create(self, address: ChatAddress, message: dict[str, Any], request: str) -> str:
        """`spaces.messages.create`; the message's resource name."""
        arguments: dict[str, Any] = {
            "parent": f"spaces/{address.space}",
            "message": message,
            "request_id": request,
        }
        if address.thread != "-":
            message["thread"] = {"name": f"spaces/{address.space}/threads/{address.thread}"}
            arguments["message_reply_option"] = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        created = self._call("create", arguments)
        return str(created.name)

    def _replaced(self, name: str, message: dict[str, Any]) -> bool:
        """`spaces.messages.update` of this app's message `name` with `message`'s fields (the
        same update again changes nothing, so a retry may repeat it); False when the message
        is gone (a person deleted it), and the part must be created instead."""
        if not name.startswith("spaces/") or "/messages/" not in name:
            return False
        fields = ",".join(key for key in message if key in ("text", "cards_v2"))
        update = {"message": {**message, "name": name}, "update_mask": fields}
        try:
            self._call("update", update)
        except DeliveryError as error:
            if error.status_code == 404:
                return False
            raise
        return True

    def _call(self, method: str, request: dict[str, Any]) -> Any:
        """`spaces.messages.<method>`, without the client's own retries (by default it retries
        a 503 for 30 s, inside one delivery attempt the engine knows nothing of) and within
        this sender's timeout; failures as `DeliveryError`."""
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions

        try:
            send = getattr(self._chat(), f"{method}_message")
            return send(request=request, retry=None, timeout=self._timeout)
        except exceptions.GoogleAPICallError as error:
            status = int(error.code or 500)
            raise DeliveryError(
                f"Google Chat refused spaces.messages.{method}: {status} {error.message}",
                retryable=status not in _FINAL_STATUSES,
                status_code=status,
            ) from error
        except (ValueError, TypeError) as error:  # a message the client cannot encode
            raise DeliveryError(f"not a Chat message: {error}", retryable=False) from error
        except auth_exceptions.GoogleAuthError as error:  # no credentials, a refused refresh
            raise DeliveryError(f"Google credentials: {error}", retryable=True) from error
        except OSError as error:  # connection refused, reset, timed out
            raise DeliveryError(f"could not reach Google Chat: {error}", retryable=True) from error

    def _chat(self) -> Any:
        """The client, built by the first delivery (the library takes about a second to load)."""
        if self._client is None:
            from google.apps import chat_v1

            credentials = self._credentials
            if credentials is None:
                import google.auth

                credentials, _ = google.auth.default(scopes=[CHAT_BOT_SCOPE])
            self._client = chat_v1.ChatServiceClient(
                credentials=credentials,
                transport="rest",
                client_options={"api_endpoint": self._endpoint},
            )
        return self._client
