"""Chat platforms the agent answers on. A channel is on when its secrets are set."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from messagedb_agent.settings.section import Section, unset_if_blank

SLACK_API_URL = "https://slack.com/api/"


class SlackSettings(Section):
    """The Slack app: its signing secret checks what Slack sends, its bot token replies."""

    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="The Slack app's signing secret (Basic Information); checks every request "
        "Slack sends. Set it to turn the Slack endpoints on.",
    )
    slack_bot_token: SecretStr | None = Field(
        default=None,
        description="The Slack app's bot token (xoxb-...), for replies with chat.postMessage.",
    )
    slack_api_url: str = Field(
        default=SLACK_API_URL,
        min_length=8,
        max_length=500,
        description="Slack's Web API base URL; point it at a proxy, or a local stand-in.",
    )

    @field_validator("slack_signing_secret", "slack_bot_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return unset_if_blank(value)

    @property
    def enabled(self) -> bool:
        return self.slack_signing_secret is not None


TELEGRAM_API_URL = "https://api.telegram.org"


class TelegramSettings(Section):
    """The Telegram bot: its webhook secret checks what Telegram sends, its token replies."""

    telegram_bot_token: SecretStr | None = Field(
        default=None, description="The bot's token from @BotFather, for replies (sendMessage)."
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None,
        description="The `secret_token` given to setWebhook; Telegram sends it in "
        "X-Telegram-Bot-Api-Secret-Token. Set it (with the token) to turn the endpoint on.",
    )
    telegram_api_url: str = Field(
        default=TELEGRAM_API_URL,
        min_length=8,
        max_length=500,
        description="The Bot API's base URL (methods are <url>/bot<token>/<method>).",
    )

    @field_validator("telegram_bot_token", "telegram_webhook_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return unset_if_blank(value)

    @property
    def enabled(self) -> bool:
        return self.telegram_webhook_secret is not None and self.telegram_bot_token is not None


GOOGLE_CHAT_API_ENDPOINT = "https://chat.googleapis.com"
GOOGLE_CHAT_CALLER = "chat@system.gserviceaccount.com"


class GoogleChatSettings(Section):
    """The Google Chat app: which tokens its requests carry; replies go out as the function's
    service account, so there is no secret to keep."""

    google_chat_audience: str | None = Field(
        default=None,
        max_length=500,
        description="The Chat app's Authentication Audience: the project number, or the "
        "endpoint URL exactly as configured. Set it to turn the Google Chat endpoint on.",
    )
    google_chat_caller: str = Field(
        default=GOOGLE_CHAT_CALLER,
        min_length=3,
        max_length=200,
        description="With an endpoint-URL audience, the email the token must name: "
        "chat@system.gserviceaccount.com, or for an app built as a Workspace add-on "
        "service-<project number>@gcp-sa-gsuiteaddons.iam.gserviceaccount.com.",
    )
    google_chat_api_endpoint: str = Field(
        default=GOOGLE_CHAT_API_ENDPOINT,
        min_length=8,
        max_length=500,
        description="The Chat API's base URL, for spaces.messages.create; a proxy or a local "
        "stand-in.",
    )
    google_chat_keys_url: str | None = Field(
        default=None,
        max_length=500,
        description="Where Google's token-signing keys are read (a JWKS); unset: Google's own "
        "for the audience's kind.",
    )

    @field_validator("google_chat_audience", "google_chat_keys_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return unset_if_blank(value)

    @field_validator("google_chat_audience")
    @classmethod
    def _project_number_or_url(cls, value: str | None) -> str | None:
        if value is not None and not (value.isdigit() or value.startswith("https://")):
            raise ValueError("give the project number (digits) or the https:// endpoint URL")
        return value

    @property
    def enabled(self) -> bool:
        return self.google_chat_audience is not None

    @property
    def addon(self) -> bool:
        """An app built as a Workspace add-on: its buttons invoke the endpoint URL."""
        return self.google_chat_caller.endswith("@gcp-sa-gsuiteaddons.iam.gserviceaccount.com")
