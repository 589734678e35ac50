"""Where notifications go: the Pub/Sub project and topics, read from the environment.

Kept apart from the engine's settings because only the functions and the local stack publish;
the CLI runs steps in-process and never needs a topic.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PROJECT = "local-project"


class PubSubSettings(BaseSettings):
    """Field names are the environment variable names (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    pubsub_project: str | None = Field(
        default=None, description="Project of the topic; defaults to GOOGLE_CLOUD_PROJECT."
    )
    google_cloud_project: str | None = Field(default=None)
    pubsub_topic: str = Field(
        default="agent-steps", min_length=3, max_length=255, description="Step notifications."
    )
    pubsub_dead_letter_topic: str = Field(
        default="agent-steps-dead-letter",
        min_length=3,
        max_length=255,
        description="Where Pub/Sub moves a notification after its last failed delivery.",
    )
    pubsub_subscription: str = Field(
        default="agent-steps-step", min_length=3, max_length=255, description="Push to step."
    )
    pubsub_emulator_host: str | None = Field(
        default=None, description="host:port of the emulator; the SDK reads it by itself."
    )
    pubsub_publish_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="How long to wait for Pub/Sub to confirm."
    )
    local_topic_url: str | None = Field(
        default=None,
        description="Base URL of the local stack's built-in topic, used instead of Pub/Sub "
        "where the emulator is not installed.",
    )

    @field_validator("pubsub_project", "google_cloud_project", "local_topic_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @property
    def project(self) -> str:
        return self.pubsub_project or self.google_cloud_project or DEFAULT_PROJECT
