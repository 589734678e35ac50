"""The edges' settings: the HTTP API, Pub/Sub, and logs and traces."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from messagedb_agent.settings.section import Section, unset_if_blank

# Public on purpose: it only ever signs tokens for a developer's own machine, which is why the
# API refuses it on Cloud Run (see `Settings.serving_api`).
DEV_AUTH_SECRET = "dev-only-insecure-secret--never-use-outside-localhost"  # noqa: S105
DEFAULT_PUBSUB_PROJECT = "local-project"
DEV_AUTH_SECRET_FILE = "dev-auth-secret"  # noqa: S105 -- a file name under MESSAGEDB_AGENT_HOME

# -- the edges -------------------------------------------------------------------------------


class ApiSettings(Section):
    """How the HTTP API authenticates callers and how hard they may push.

    With no key configured it accepts tokens signed with the public development secret, so the
    local stack works with zero configuration; see `Settings.serving_api` for Cloud Run.
    """

    jwt_hs256_secret: SecretStr | None = Field(
        default=None, description="Shared secret of HS256 tokens."
    )
    jwt_public_key: SecretStr | None = Field(
        default=None, description="PEM public key of RS256 tokens."
    )
    jwt_jwks_url: str | None = Field(
        default=None, description="JWKS endpoint publishing the RS256 signing keys."
    )
    jwt_audience: str | None = Field(default=None, description="Required `aud` claim, if set.")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` claim, if set.")
    jwt_leeway_seconds: float = Field(
        default=10.0, ge=0, le=300, description="Clock skew allowed on `exp`, `nbf` and `iat`."
    )
    dev_auth_secret: SecretStr = Field(
        default=SecretStr(DEV_AUTH_SECRET),
        description="HS256 secret the API checks when no JWT key is configured (local work); "
        "the local stack sets it to this checkout's own secret, MESSAGEDB_AGENT_HOME/"
        "dev-auth-secret.",
    )
    allow_dev_auth: bool = Field(
        default=False, description="Accept the development secret even on Cloud Run."
    )
    rate_limit_per_minute: int = Field(
        default=30, ge=0, le=100_000, description="Writes per user per minute; 0 turns it off."
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, le=100_000, description="Bucket size; defaults to the per-minute rate."
    )
    max_wait_seconds: float = Field(
        default=30.0, gt=0, le=30, description="Longest `wait` a request may ask for a reply."
    )
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=10 * 1024 * 1024,
        description="Largest request body accepted.",
    )
    stream_token_secret: SecretStr | None = Field(
        default=None,
        description="Key material for stream tokens (`EventSource` links); unset: derived from "
        "JWT_HS256_SECRET (or, locally, the development secret). Needed with RS256/JWKS only.",
    )
    stream_max_seconds: float = Field(
        default=3300.0,
        gt=0,
        le=3600,
        description="Longest a stream stays open before the client resumes it; under the "
        "ingest function's request timeout (Terraform sets 3600 s).",
    )
    streams_per_user: int = Field(
        default=5, ge=1, le=1000, description="Open streams one user may hold per instance."
    )
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        le=30 * 24 * 3600,
        description="How long the answer to a POST with an `Idempotency-Key` is replayed; "
        "after it the key counts as new.",
    )

    @property
    def stream_token_material(self) -> str | None:
        """What stream tokens' key is derived from (`api/stream_tokens.py`): a secret only
        this deployment knows, never a published default."""
        for secret in (self.stream_token_secret, self.jwt_hs256_secret):
            if secret is not None:
                return secret.get_secret_value()
        if self.uses_dev_auth:
            return self.dev_auth_secret.get_secret_value()
        return None

    @property
    def uses_dev_auth(self) -> bool:
        return not (self.jwt_hs256_secret or self.jwt_public_key or self.jwt_jwks_url)

    @property
    def burst(self) -> int:
        return self.rate_limit_burst or max(1, self.rate_limit_per_minute)

    @property
    def accepts_public_secret(self) -> bool:
        """Whether a token signed with the published development secret would be accepted."""
        public = self.dev_auth_secret.get_secret_value() == DEV_AUTH_SECRET
        return self.uses_dev_auth and public and not self.allow_dev_auth


def checkout_dev_secret(home: Path) -> str:
    """This checkout's own development secret, kept in `home` (mode 0600) and made once.

    The local stack signs its tokens with it when no secret is configured, so a token printed
    by `make stack` or `messagedb-agent token` still works after the stack restarts, while
    another checkout's tokens do not. It is written to a temporary file and linked into place,
    so two processes starting at once agree on one secret and never read a half-written one.
    """
    path = home / DEV_AUTH_SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text(encoding="utf-8").strip()
        if existing:
            return existing
    home.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=home, prefix=f".{DEV_AUTH_SECRET_FILE}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp makes it 0600
            file.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text(encoding="utf-8").strip()


def local_signing_secret(api: ApiSettings, home: Path) -> str:
    """The HS256 secret local tokens are signed with, and the local stack's API checks.

    JWT_HS256_SECRET when set, else DEV_AUTH_SECRET when given explicitly, else the
    checkout's own secret under `home` (never the public default, which any reader of this
    code could sign with).
    """
    if api.jwt_hs256_secret is not None:
        return api.jwt_hs256_secret.get_secret_value()
    if "dev_auth_secret" in api.model_fields_set:
        return api.dev_auth_secret.get_secret_value()
    return checkout_dev_secret(home)


def local_token_refusal(api: ApiSettings, k_service: str | None) -> str | None:
    """Why a development token must not be minted with these settings, or None when it may.

    Such tokens are for local work only: on Cloud Run, or where the API trusts a real
    identity provider (an issuer, or RS256 keys and no shared secret), tokens come from there.
    """
    if k_service:
        return f"K_SERVICE is set ({k_service}): development tokens are for local work only"
    if api.jwt_issuer:
        return f"JWT_ISSUER is set: tokens come from {api.jwt_issuer}, not from this command"
    if api.jwt_hs256_secret is None and not api.uses_dev_auth:
        return (
            "the API checks RS256 tokens (JWT_PUBLIC_KEY or JWT_JWKS_URL): "
            "get one from your identity provider"
        )
    return None


class PubSubSettings(Section):
    """Where step notifications go: the topic (or the local stack's stand-in for it)."""

    pubsub_project: str | None = Field(
        default=None,
        description="Project of the topic; defaults to GOOGLE_CLOUD_PROJECT, else "
        f"{DEFAULT_PUBSUB_PROJECT}.",
    )
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
        default="agent-steps-step",
        min_length=3,
        max_length=255,
        description="The push subscription to step: named on the step spans "
        "(messaging.destination.subscription.name), and created so by the local stack.",
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

    @field_validator("pubsub_project", "local_topic_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return unset_if_blank(value)


class ObservabilitySettings(Section):
    """How the process logs and traces (the project and service come from `Settings`)."""

    log_format: Literal["json", "console"] | None = Field(
        default=None,
        description="`json` (Cloud Logging) or `console`; unset means json on Cloud Run "
        "(K_SERVICE set), console elsewhere.",
    )
    log_level: str = Field(default="INFO", description="Least severe level written.")
    log_max_body_chars: int = Field(
        default=200,
        ge=20,
        le=100_000,
        description="Longer strings in a log line are cut to this many characters.",
    )
    trace_exporter: Literal["none", "console", "gcp"] = Field(
        default="none",
        description="Where spans go: nowhere (trace context still propagates), stdout, or "
        "Cloud Trace (needs opentelemetry-exporter-gcp-trace).",
    )
