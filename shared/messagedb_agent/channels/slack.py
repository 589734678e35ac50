"""Slack: the Events API and interactivity in, `chat.postMessage` out, as Slack documents them.

In (`SlackInbound`, behind `POST /v1/channels/slack/events` and `.../interactions`):

- Every request is checked before anything else: HMAC-SHA256 with the app's signing secret
  over `v0:<X-Slack-Request-Timestamp>:<raw body>`, compared in constant time, and refused
  when the timestamp is more than five minutes from now
  (https://docs.slack.dev/authentication/verifying-requests-from-slack), with the official
  `slack_sdk.signature.SignatureVerifier`. A request that fails gets a 401 and appends nothing.
- `url_verification` is answered with its challenge
  (https://docs.slack.dev/reference/events/url_verification).
- A message is appended and the request answered at once: Slack wants a 2xx within three
  seconds and retries up to three times otherwise (https://docs.slack.dev/apis/events-api/).
  A retry (`X-Slack-Retry-Num`), and the same message delivered as both `app_mention` and
  `message`, append nothing more: the message's identity (team, channel, `ts`) is its key.
- Which messages the agent answers: any in a DM with it (`channel_type` `im`); in a channel,
  a mention of it (`app_mention`) starts a conversation in that message's thread, and later
  messages of the same person in that thread continue it. Messages with a `subtype` (edits,
  joins, bot posts) and messages from any bot, this one included (`bot_id`), are ignored
  (https://docs.slack.dev/reference/events/message).
- Approval buttons (`block_actions`) arrive form-encoded with a `payload` field, signed the same
  way (https://docs.slack.dev/interactivity/handling-user-interaction); the person who clicks
  decides as themselves, so only the thread's owner can approve its calls.

Out (`SlackReplies`, the `slack:` reply address of the step function's deliveries): one
`chat.postMessage` per reply, in the conversation's thread, through the official `WebClient`
with its own retries off (the engine records each attempt and owns backoff). The reply's
Markdown becomes mrkdwn (`slackify_markdown`, which also escapes `&`, `<` and `>`, so a model
cannot write `<!channel>`) in section blocks of at most 3,000 characters, at most 50 blocks,
with a plain-text fallback under the recommended 4,000 characters
(https://docs.slack.dev/reference/methods/chat.postMessage,
https://docs.slack.dev/reference/block-kit/blocks). One call per reply means a retried delivery
never leaves half a reply posted twice.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from messagedb_agent.channels.callback import DeliveryError
from messagedb_agent.channels.conversations import ChannelMessage, Conversations
from messagedb_agent.channels.inbound import Answer, Endpoint, json_object
from messagedb_agent.channels.replies import address_parts, address_uri
from messagedb_agent.events.ids import channel_key, channel_user
from messagedb_agent.threads.errors import ThreadError

log = logging.getLogger(__name__)

SCHEME = "slack"
BLOCK_TEXT_LIMIT = 3000  # a section block's text
MAX_BLOCKS = 50  # per message
FALLBACK_LIMIT = 3900  # `text`, under the recommended 4,000
_CLOSED = "This conversation has ended. Mention me to start a new one."
_TOO_FAST = "You're sending messages faster than I can keep up with; please wait {} seconds."
_APPROVE, _DECLINE = "approve", "decline"


@dataclass(frozen=True, slots=True)
class SlackAddress:
    """Where a conversation's replies go: a channel (or DM) and the thread in it."""

    team: str
    channel: str
    thread_ts: str

    def uri(self) -> str:
        return address_uri(SCHEME, self.team, self.channel, self.thread_ts)

    @classmethod
    def parse(cls, uri: str) -> SlackAddress:
        return cls(*address_parts(uri, SCHEME, 3))


_OK = Answer(200, {"ok": True})
_UNVERIFIED = Answer(
    401, {"error": {"code": "unauthorized", "message": "Slack's signature is missing or wrong."}}
)


class _Verifier:
    """Whether Slack signed a body, within the five-minute window: the official verifier, built
    once. It raises on some malformed headers (a non-numeric timestamp, a non-ASCII
    signature): those are forgeries too."""

    def __init__(self, secret: str, now: Callable[[], float]) -> None:
        from slack_sdk.signature import Clock, SignatureVerifier

        class _Now(Clock):
            def now(self) -> float:
                return now()

        self._verifier = SignatureVerifier(secret, clock=_Now())

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> bool:
        lowered = {key.lower(): value for key, value in headers.items()}
        try:
            return self._verifier.is_valid(
                body, lowered.get("x-slack-request-timestamp"), lowered.get("x-slack-signature")
            )
        except (ValueError, TypeError, UnicodeDecodeError):
            return False


def message_of(envelope: dict[str, Any]) -> ChannelMessage | None:
    """The user message an `event_callback` carries, or None for anything the agent does not
    answer (other events, edits and other subtypes, bots, empty text)."""
    event = envelope.get("event")
    if not isinstance(event, dict) or event.get("type") not in ("message", "app_mention"):
        return None
    if event.get("subtype") or event.get("bot_id") or event.get("bot_profile"):
        return None
    team = _text(event, "team") or _text(envelope, "team_id")
    user, channel, ts, text = (_text(event, k) for k in ("user", "channel", "ts", "text"))
    if not (team and user and channel and ts and text):
        return None
    thread_ts = _text(event, "thread_ts")
    direct = event.get("channel_type") == "im"
    mention = event["type"] == "app_mention"
    if not direct and event.get("channel_type") is None and not mention:
        return None  # a message of unknown kind: not one the app subscribed to
    # A DM is one conversation unless its message is in a thread, answered at the top level
    # (`-`); a mention starts a thread under itself.
    root = thread_ts or ("" if direct else ts)
    try:
        who = channel_user(SCHEME, team, user)
    except ValueError:
        return None
    return ChannelMessage(
        user=who,
        thread_key=channel_key(SCHEME, team, channel, root),
        message_key=channel_key(SCHEME, team, channel, ts),
        text=text,
        reply_to=SlackAddress(team, channel, thread_ts or ("-" if direct else ts)).uri(),
        title=" ".join(text.split())[:80],
        starts=direct or mention,
    )


def _invalid(code: str, message: str) -> Answer:
    return Answer(400, {"error": {"code": code, "message": message}})


def _text(source: dict[str, Any], key: str) -> str | None:
    value = source.get(key)
    return value if isinstance(value, str) and value else None


class SlackInbound:
    def __init__(
        self,
        signing_secret: str,
        conversations: Conversations,
        replies: SlackReplies | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._verified = _Verifier(signing_secret, now)
        self._conversations = conversations
        self._replies = replies

    def endpoints(self) -> Mapping[str, Endpoint]:
        return {"events": self.events, "interactions": self.interactions}

    def events(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        if not self._verified(body, headers):
            return _UNVERIFIED
        try:
            envelope = json.loads(body)
        except ValueError:
            return _invalid("invalid_json", "The body is not JSON.")
        if not isinstance(envelope, dict):
            return _invalid("invalid_json", "The body is not a JSON object.")
        kind = envelope.get("type")
        if kind == "url_verification":
            return Answer(200, {"challenge": str(envelope.get("challenge", ""))})
        if kind != "event_callback":
            return _OK  # app_rate_limited and anything newer: nothing to do
        message = message_of(envelope)
        if message is None:
            return _OK
        try:
            said = self._conversations.said(message)
        except ThreadError as error:
            self._tell(message, _CLOSED if error.code == "thread_closed" else str(error))
            return _OK  # answered in words; a retry would be refused the same way
        if said.retry_after is not None:
            self._tell(message, _TOO_FAST.format(said.retry_after))
        return _OK

    def interactions(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        if not self._verified(body, headers):
            return _UNVERIFIED
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        try:
            payload = json.loads(form["payload"][0])
        except (KeyError, IndexError, ValueError):
            return _invalid("invalid_payload", "The form has no JSON `payload` field.")
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return _OK
        person = json_object(payload.get("user"))
        team = person.get("team_id") or json_object(payload.get("team")).get("id")
        actions = payload.get("actions")
        for action in actions if isinstance(actions, list) else []:
            self._decide(team, person.get("id"), action)
        return _OK

    def _decide(self, team: Any, person: Any, action: Any) -> None:
        if not isinstance(action, dict) or action.get("action_id") not in (_APPROVE, _DECLINE):
            return
        try:
            user = channel_user(SCHEME, str(team), str(person))
            value = json.loads(str(action.get("value")))
            thread, call = str(value["thread"]), str(value["call"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            self._conversations.decide(user, thread, call, approve=action["action_id"] == _APPROVE)
        except ThreadError as error:  # another person's thread, decided already, expired
            log.info("slack approval by %s for %s not taken: %s", user, call, error)

    def _tell(self, message: ChannelMessage, text: str) -> None:
        if self._replies is None:
            return
        try:
            self._replies.post(SlackAddress.parse(message.reply_to), text)
        except DeliveryError as error:
            log.warning("could not tell %s on Slack: %s", message.user, error)


# -- replies ---------------------------------------------------------------------------------


def to_mrkdwn(markdown: str) -> str:
    from slackify_markdown import slackify_markdown

    return str(slackify_markdown(markdown)).strip()


def sections(mrkdwn: str) -> list[dict[str, Any]]:
    """Section blocks of at most `BLOCK_TEXT_LIMIT` characters, cut at a line (else a space)
    where one falls in the second half; more than `MAX_BLOCKS` is cut short, said so."""
    pieces: list[str] = []
    rest = mrkdwn
    while rest:
        if len(rest) <= BLOCK_TEXT_LIMIT:
            pieces.append(rest)
            break
        cut = rest.rfind("\n", BLOCK_TEXT_LIMIT // 2, BLOCK_TEXT_LIMIT)
        if cut < 0:
            cut = rest.rfind(" ", BLOCK_TEXT_LIMIT // 2, BLOCK_TEXT_LIMIT)
        if cut < 0:
            cut = BLOCK_TEXT_LIMIT
        pieces.append(rest[:cut])
        rest = rest[cut:].lstrip("\n ")
    if len(pieces) > MAX_BLOCKS:
        pieces = [*pieces[: MAX_BLOCKS - 1], "_(The reply was longer than one Slack message.)_"]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": p}} for p in pieces if p]


def fallback(mrkdwn: str) -> str:
    return mrkdwn if len(mrkdwn) <= FALLBACK_LIMIT else mrkdwn[: FALLBACK_LIMIT - 1] + "…"


def approval_blocks(payload: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    thread = str(payload.get("thread_id"))
    blocks: list[dict[str, Any]] = []
    for asked in payload.get("approvals") or []:
        call, tool = str(asked.get("tool_call_id")), str(asked.get("tool"))
        arguments = json.dumps(asked.get("arguments") or {}, ensure_ascii=False)
        again = (
            " again (its first run may or may not have happened)" if asked.get("retry_of") else ""
        )
        text = f"May I run *{_escape(tool)}*{again}?\n```{_escape(arguments)[:2500]}```"
        value = json.dumps({"thread": thread, "call": call})
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button("Approve", _APPROVE, value, "primary"),
                    _button("Decline", _DECLINE, value, "danger"),
                ],
            }
        )
    return "I need your approval to go on.", blocks[:MAX_BLOCKS]


def _button(label: str, action: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action,
        "value": value,
        "style": style,
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Errors a person must fix (a token, a scope, the app's place in the channel); retried, so the
# reply goes out once they have. https://docs.slack.dev/reference/methods/chat.postMessage
_OPERATOR_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "not_in_channel",
        "ekm_access_denied",
        "team_access_not_granted",
    }
)
_TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "request_timeout",
        "internal_error",
        "fatal_error",
        "service_unavailable",
    }
)


# chat.update's refusals of a message that can no longer become the reply (deleted, too old)
_CANNOT_UPDATE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class SlackReplies:
    """A `ReplySender` for `slack:` addresses."""

    def __init__(self, token: str, api_url: str, timeout: float = 10.0) -> None:
        from slack_sdk import WebClient

        # No retry handlers: a connection reset after Slack took the message must not post
        # it twice; the engine retries the delivery, recorded, with backoff.
        self._client = WebClient(token=token, base_url=api_url, timeout=int(timeout))
        self._client.retry_handlers = []

    def send(self, url: str, body: bytes, delivery_id: str, *, skip: int = 0) -> int:
        try:
            address = SlackAddress.parse(url)
            payload = json.loads(body)
        except ValueError as error:
            raise DeliveryError(str(error), retryable=False) from error
        if payload.get("type") == "approval_requested":
            text, blocks = approval_blocks(payload)
        else:
            markdown = str((payload.get("reply") or {}).get("text") or "")
            if not markdown.strip():
                return 204  # nothing to say
            mrkdwn = to_mrkdwn(markdown)
            text, blocks = fallback(mrkdwn), sections(mrkdwn)
        replaces = payload.get("replaces")
        if isinstance(replaces, str) and replaces:
            # the busy notice becomes the reply: chat.update, which a retry repeats harmlessly
            self.post(address, text, blocks, delivery_id, update=replaces)
        else:
            self.post(address, text, blocks, delivery_id)
        return 200

    def notice(self, url: str, text: str, key: str) -> str:
        """Post `text` in the conversation; its `ts`, for `chat.update` to replace it."""
        return self.post(SlackAddress.parse(url), text)

    def post(
        self,
        address: SlackAddress,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        delivery_id: str | None = None,
        *,
        update: str | None = None,
    ) -> str:
        """`chat.postMessage` (or with `update`, the `ts` of this app's message there,
        `chat.update`); the message's `ts`."""
        from slack_sdk.errors import SlackApiError

        arguments: dict[str, Any] = {"channel": address.channel, "text": text}
        if update is not None:
            arguments["ts"] = update
        elif address.thread_ts != "-":
            arguments["thread_ts"] = address.thread_ts
        if blocks:
            arguments["blocks"] = blocks
        if delivery_id is not None:
            # in the message itself: whoever reads the channel can tell which delivery it was
            arguments["metadata"] = {
                "event_type": "agent_reply",
                "event_payload": {"delivery_id": delivery_id},
            }
        method = "chat.update" if update is not None else "chat.postMessage"
        try:
            if update is not None:
                answer = self._client.chat_update(**arguments)
            else:
                answer = self._client.chat_postMessage(unfurl_links=False, **arguments)
        except SlackApiError as error:
            status = error.response.status_code
            code = str(error.response.get("error") or "")
            if update is not None and code in _CANNOT_UPDATE:  # the notice is gone: post anew
                return self.post(address, text, blocks, delivery_id)
            retry_after = error.response.headers.get("Retry-After")
            wait = f" (Retry-After {retry_after} s)" if retry_after else ""
            retryable = (
                status == 429 or status >= 500 or code in _OPERATOR_ERRORS | _TRANSIENT_ERRORS
            )
            raise DeliveryError(
                f"Slack refused {method}: {code or status}{wait}",
                retryable=retryable,
                status_code=status,
            ) from error
        except OSError as error:  # urllib's URLError, timeouts, resets
            raise DeliveryError(f"could not reach Slack: {error}", retryable=True) from error
        return str(answer.get("ts") or "")
