"""The chat platforms this deployment is on, built from its settings.

The one place that knows every platform: a new one is its own module, its settings section,
and a branch in each function here. A platform's endpoints are on when its inbound secrets are
set; its replies when its outbound credentials are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messagedb_agent.channels.callback import ReplySender
    from messagedb_agent.channels.conversations import Conversations
    from messagedb_agent.channels.inbound import Inbound
    from messagedb_agent.settings import Settings


def senders(settings: Settings) -> dict[str, ReplySender]:
    """The platforms this deployment can reply on, by reply-address scheme."""
    built: dict[str, ReplySender] = {}
    timeout = settings.callbacks.delivery_timeout_seconds
    slack = settings.slack
    if slack.slack_bot_token is not None:
        from messagedb_agent.channels.slack import SlackReplies

        token = slack.slack_bot_token.get_secret_value()
        built["slack"] = SlackReplies(token, slack.slack_api_url, timeout)
    telegram = settings.telegram
    if telegram.telegram_bot_token is not None:
        from messagedb_agent.channels.telegram import TelegramReplies

        token = telegram.telegram_bot_token.get_secret_value()
        built["telegram"] = TelegramReplies(token, telegram.telegram_api_url, timeout)
    chat = settings.google_chat
    if chat.enabled:  # replies go out as the function's own service account
        from messagedb_agent.channels.google_chat import GoogleChatReplies

        action = chat.google_chat_audience if chat.addon else "approval"
        assert action is not None  # enabled
        built["google-chat"] = GoogleChatReplies(
            chat.google_chat_api_endpoint, timeout, card_action=action
        )
    return built


def inbound(
    platform: str,
    settings: Settings,
    conversations: Conversations,
    replies: Mapping[str, ReplySender],
) -> Inbound | None:
    """The platform's endpoints, or None when it is not on (its paths are then 404)."""
    if platform == "slack" and settings.slack.enabled:
        from messagedb_agent.channels.slack import SlackInbound, SlackReplies

        secret = settings.slack.slack_signing_secret
        assert secret is not None  # enabled
        slack = replies.get("slack")
        told = slack if isinstance(slack, SlackReplies) else None
        return SlackInbound(secret.get_secret_value(), conversations, told)
    telegram = settings.telegram
    if platform == "telegram" and telegram.enabled:
        from messagedb_agent.channels.telegram import TelegramInbound, TelegramReplies

        assert telegram.telegram_webhook_secret is not None  # enabled
        assert telegram.telegram_bot_token is not None
        sender = replies.get("telegram")
        assert isinstance(sender, TelegramReplies)  # the token is set
        return TelegramInbound(
            telegram.telegram_webhook_secret.get_secret_value(),
            telegram.telegram_bot_token.get_secret_value().partition(":")[0],  # the bot's id
            conversations,
            sender,
        )
    chat = settings.google_chat
    if platform == "google-chat" and chat.google_chat_audience is not None:
        from messagedb_agent.channels.google_chat import ChatTokens, GoogleChatInbound

        tokens = ChatTokens(
            chat.google_chat_audience, chat.google_chat_caller, chat.google_chat_keys_url
        )
        return GoogleChatInbound(tokens, conversations)
    return None
