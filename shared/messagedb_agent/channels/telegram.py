"""Telegram: webhook updates in, `sendMessage` out, as the Bot API documents them.

In (`TelegramInbound`, behind `POST /v1/channels/telegram/webhook`):

- Telegram sends the `secret_token` given to `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`
  on every request (https://core.telegram.org/bots/api#setwebhook); it is compared in constant
  time, and a request without it gets a 401 and appends nothing.
- A text message from a person is appended and the request answered at once. Telegram repeats
  an update until it gets a 2xx, so a repeat must append nothing: the message's identity (chat,
  `message_id`) is its key; `update_id` identifies the same update
  (https://core.telegram.org/bots/api#update).
- The 200 carries a `sendChatAction` "typing" for the chat: Telegram runs a method given in the
  webhook's answer (https://core.telegram.org/bots/api#making-requests-when-getting-updates), so
  the busy indicator costs no request of its own.
- Conversations: a private chat is one; a group's forum topic (`message_thread_id`) or the
  group itself is one per person, started by a command, a mention or a reply to the bot, and
  continued by that person's later messages there. Bots (`from.is_bot`) are ignored.

Out (`TelegramReplies`, the `telegram:` reply address): `sendMessage` through plain httpx, not
python-telegram-bot: that library is asyncio-only (a function would run an event loop per
call, and a `Bot` reused across `asyncio.run` calls fails), and costs over half a second of
import at every cold start, for the two methods used here. The model's Markdown becomes plain
text with `entities` (`telegramify-markdown`; https://core.telegram.org/bots/api#messageentity),
split at 4,096 UTF-16 code units, the most the documented "1-4096 characters" can mean
(https://core.telegram.org/bots/api#sendmessage), on line ends where possible.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from messagedb_agent.channels.callback import DeliveryError
from messagedb_agent.channels.conversations import ChannelMessage, Conversations
from messagedb_agent.channels.inbound import Answer, Endpoint, json_object
from messagedb_agent.channels.replies import address_parts, address_uri
from messagedb_agent.events.ids import channel_key, channel_user
from messagedb_agent.threads.errors import ThreadError

log = logging.getLogger(__name__)

SCHEME = "telegram"
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 -- a header name
TEXT_LIMIT = 4096  # UTF-16 code units, the strictest reading of the documented limit
_OK = Answer(200, {})
_APPROVE, _DECLINE = "approve", "decline"
_CLOSED = "This conversation has ended. Mention me, or reply to me, to start a new one."
_UNVERIFIED = Answer(
    401, {"error": {"code": "unauthorized", "message": "The webhook secret is missing or wrong."}}
)


@dataclass(frozen=True, slots=True)
class TelegramAddress:
    bot: str
    chat: str
    topic: str  # `message_thread_id`, or `-`

    def uri(self) -> str:
        return address_uri(SCHEME, self.bot, self.chat, self.topic)

    @classmethod
    def parse(cls, uri: str) -> TelegramAddress:
        return cls(*address_parts(uri, SCHEME, 3))


def message_of(update: dict[str, Any], bot: str) -> ChannelMessage | None:
    """The person's text message an update carries, or None (edits, bots, channels, service
    messages, anything without text)."""
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    person, chat, text = message.get("from"), message.get("chat"), message.get("text")
    if not (isinstance(person, dict) and isinstance(chat, dict) and isinstance(text, str)):
        return None
    if person.get("is_bot") or chat.get("type") == "channel" or not text.strip():
        return None
    chat_id, message_id, user = chat.get("id"), message.get("message_id"), person.get("id")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (chat_id, message_id, user)):
        return None
    for entity in message.get("entities") or []:  # "@bot do this": the request is "do this"
        if (
            isinstance(entity, dict)
            and entity.get("type") == "mention"
            and entity.get("offset") == 0
        ):
            length = entity.get("length")
            if isinstance(length, int) and text[:length].isascii():  # usernames are ASCII
                text = text[length:].lstrip() or text
    where = _topic(message)
    try:
        who = channel_user(SCHEME, bot, str(user))
    except ValueError:
        return None
    return ChannelMessage(
        user=who,
        thread_key=channel_key(SCHEME, bot, str(chat_id), where),
        message_key=channel_key(SCHEME, bot, str(chat_id), str(message_id)),
        text=text,
        reply_to=TelegramAddress(bot, str(chat_id), where).uri(),
        title=" ".join(text.split())[:80],
        starts=chat.get("type") == "private" or _addressed(message, bot),
    )


def _addressed(message: dict[str, Any], bot: str) -> bool:
    """In a group: a command, a mention, or a reply to this bot starts a conversation; the
    person's other messages there only continue one. (With privacy mode on, the default,
    Telegram sends a bot little else: https://core.telegram.org/bots/features#privacy-mode.)"""
    replied = message.get("reply_to_message")
    if isinstance(replied, dict) and str(json_object(replied.get("from")).get("id")) == bot:
        return True
    entities = message.get("entities") or []
    return any(
        isinstance(e, dict) and e.get("type") in ("bot_command", "mention", "text_mention")
        for e in entities
    )


class TelegramInbound:
    def __init__(
        self, secret: str, bot: str, conversations: Conversations, replies: TelegramReplies
    ) -> None:
        self._secret = secret
        self._bot = bot  # the numeric id before the token's colon: whose updates these are
        self._conversations = conversations
        self._replies = replies

    def endpoints(self) -> Mapping[str, Endpoint]:
        return {"webhook": self.webhook}

    def webhook(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER), "")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            return _UNVERIFIED
        try:
            update = json.loads(body)
        except ValueError:
            return Answer(400, {"error": {"code": "invalid_json", "message": "Not JSON."}})
        if not isinstance(update, dict):
            return Answer(400, {"error": {"code": "invalid_json", "message": "Not an object."}})
        if isinstance(update.get("callback_query"), dict):
            return self._clicked(update["callback_query"])
        message = message_of(update, self._bot)
        if message is None:
            return _OK
        address = TelegramAddress.parse(message.reply_to)
        try:
            said = self._conversations.said(message)
        except ThreadError as error:
            ended = error.code == "thread_closed"
            self._replies.tell(address, _CLOSED if ended else str(error))
            return _OK
        if said.retry_after is not None:
            wait = f"please wait {said.retry_after} seconds"
            self._replies.tell(
                address, f"You're sending messages faster than I can keep up; {wait}."
            )
            return _OK
        return Answer(200, typing(address))

    def _clicked(self, query: dict[str, Any]) -> Answer:
        """An approval button pressed: decided as the person who pressed it, in their own
        conversation where the button is; answered with `answerCallbackQuery` in the webhook's
        own answer, which ends the button's spinner."""
        told = self._decide(query)
        answer = {"method": "answerCallbackQuery", "callback_query_id": str(query.get("id", ""))}
        return Answer(200, answer | ({"text": told} if told else {}))

    def _decide(self, query: dict[str, Any]) -> str | None:
        person, message = json_object(query.get("from")), json_object(query.get("message"))
        data, chat = str(query.get("data") or ""), json_object(message.get("chat"))
        decision = {"a": _APPROVE, "d": _DECLINE}.get(data[:1])
        person_id, chat_id = person.get("id"), chat.get("id")
        if decision is None or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (person_id, chat_id)
        ):
            return None
        where = _topic(message)
        user = channel_user(SCHEME, self._bot, str(person_id))
        waiting = self._conversations.pending(
            user, channel_key(SCHEME, self._bot, str(chat_id), where)
        )
        if waiting is None:
            return "That question isn't yours to answer."
        thread, pending = waiting
        call = next((a for a in pending if button_data(decision, a.tool_call_id) == data), None)
        if call is None:
            return "That was answered already, or is no longer asked."
        try:
            self._conversations.decide(
                user, thread, call.tool_call_id, approve=decision == _APPROVE
            )
        except ThreadError as error:
            return str(error)[:200]
        return "Approved." if decision == _APPROVE else "Declined."


def _topic(message: dict[str, Any]) -> str:
    """The forum topic a message is in (`message_thread_id`), or `-`."""
    topic = message.get("message_thread_id") if message.get("is_topic_message") else None
    return str(topic) if isinstance(topic, int) else "-"


def _to(address: TelegramAddress) -> dict[str, Any]:
    """A method's arguments naming the chat, and the topic where there is one."""
    target: dict[str, Any] = {"chat_id": int(address.chat)}
    if address.topic != "-":
        target["message_thread_id"] = int(address.topic)
    return target


def typing(address: TelegramAddress) -> dict[str, Any]:
    """ "typing…" for the chat (https://core.telegram.org/bots/api#sendchataction), as the
    webhook's answer carries a method."""
    return {"method": "sendChatAction", **_to(address), "action": "typing"}


def formatted(markdown: str, limit: int = TEXT_LIMIT) -> list[tuple[str, list[dict[str, Any]]]]:
    """The model's Markdown as Telegram text and its `entities` (bold, code, links...), in
    pieces of at most `limit` UTF-16 units, cut at line ends. Entities, not a `parse_mode`: no
    reply can fail to parse, and no text the model writes can become markup."""
    from telegramify_markdown import convert, split_entities

    text, entities = convert(markdown)
    return [
        (piece, [entity.to_dict() for entity in found])
        for piece, found in split_entities(text, entities, limit)
    ]


class TelegramReplies:
    """A `ReplySender` for `telegram:` addresses."""

    def __init__(self, token: str, api_url: str, timeout: float = 10.0) -> None:
        self._base = f"{api_url.rstrip('/')}/bot{token}"
        self._timeout = timeout
        self._http: httpx.Client | None = None  # built by the first call (see `_client`)

    def send(self, url: str, body: bytes, delivery_id: str, *, skip: int = 0) -> int:
        """The reply's parts after the first `skip`, which earlier attempts delivered: Telegram
        has no idempotency key, so the count recorded with each failed attempt is what keeps a
        retry from posting a part twice. A failure says how many parts are delivered now."""
        try:
            address = TelegramAddress.parse(url)
            payload = json.loads(body)
        except ValueError as error:
            raise DeliveryError(str(error), retryable=False) from error
        text = str((payload.get("reply") or {}).get("text") or "")
        if payload.get("type") == "approval_requested":
            question, keyboard = approval_question(payload)
            self._call("sendMessage", _message(address, question) | {"reply_markup": keyboard})
            return 200
        pieces = formatted(text)
        for number, (piece, entities) in enumerate(pieces):
            if number < skip:
                continue
            try:
                self._call("sendMessage", _message(address, piece) | {"entities": entities})
            except DeliveryError as error:
                error.delivered = number
                raise
        return 200 if pieces else 204

    def busy(self, url: str) -> None:
        """ "typing…" in the conversation, for the five seconds Telegram shows it
        (https://core.telegram.org/bots/api#sendchataction)."""
        self._call("sendChatAction", {**_to(TelegramAddress.parse(url)), "action": "typing"})

    def tell(self, address: TelegramAddress, text: str) -> None:
        try:
            self._call("sendMessage", _message(address, text))
        except DeliveryError as error:
            log.warning("could not tell chat %s on Telegram: %s", address.chat, error)

    def _client(self) -> httpx.Client:
        """One client per process, built on first use: its connections are reused, and building
        one (its TLS context) costs tens of milliseconds a cold start need not pay."""
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout)
        return self._http

    def _call(self, method: str, arguments: dict[str, Any]) -> None:
        try:
            answer = self._client().post(f"{self._base}/{method}", json=arguments)
        except httpx.HTTPError as error:
            raise DeliveryError(f"could not reach Telegram: {error}", retryable=True) from error
        try:
            data = answer.json()
        except ValueError:
            data = {}
        if answer.status_code == 200 and data.get("ok") is True:
            return
        status = answer.status_code
        description = str(data.get("description") or status)
        retry_after = (data.get("parameters") or {}).get("retry_after")
        wait = f" (retry after {retry_after} s)" if retry_after else ""
        # 401: the token; 403: blocked by the person, or not in the group: an operator's or a
        # person's fix, so retried with backoff; 400 is a request that will never pass.
        raise DeliveryError(
            f"Telegram refused {method}: {description}{wait}",
            retryable=status != 400,
            status_code=status,
        )


def button_data(decision: str, tool_call_id: str) -> str:
    """A button's `callback_data` (1-64 bytes: https://core.telegram.org/bots/api#inlinekeyboardbutton):
    the decision and a digest of the call id, which a model may make longer than fits. The
    thread is the clicker's own conversation where the button is, so it needs no room."""
    digest = hashlib.sha256(tool_call_id.encode()).digest()[:16]
    return f"{decision[0]}:{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def approval_question(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The question, in plain text, and an inline keyboard: a row of Approve and Decline per
    call asked."""
    lines, rows = ["I need your approval to go on."], []
    for asked in payload.get("approvals") or []:
        call, tool = str(asked.get("tool_call_id")), str(asked.get("tool"))
        arguments = json.dumps(asked.get("arguments") or {}, ensure_ascii=False)[:1500]
        again = (
            " again (its first run may or may not have happened)" if asked.get("retry_of") else ""
        )
        lines.append(f"May I run {tool}{again}? {arguments}")
        rows.append(
            [
                {"text": f"Approve {tool}"[:60], "callback_data": button_data(_APPROVE, call)},
                {"text": "Decline", "callback_data": button_data(_DECLINE, call)},
            ]
        )
    return "\n\n".join(lines)[:TEXT_LIMIT], {"inline_keyboard": rows}


def _message(address: TelegramAddress, text: str) -> dict[str, Any]:
    return {**_to(address), "text": text, "link_preview_options": {"is_disabled": True}}
