"""The HTTP API's own settings: how callers are authenticated and how hard they may push.

With no key configured the API accepts tokens signed with a development secret, so the local
stack works with zero configuration; that secret is public (it is in this file), so the API
refuses to start with it on Cloud Run (`K_SERVICE` set) unless `ALLOW_DEV_AUTH` says so.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Public on purpose: it only ever signs tokens for a developer's own machine.
DEV_AUTH_SECRET = "dev-only-insecure-secret--never-use-outside-localhost"  # noqa: S105


class ApiSettings(BaseSettings):
    """Field names are the environment variable names (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

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
    jwt_leeway_seconds: float = Field(default=10.0, ge=0, le=300)
    dev_auth_secret: SecretStr = Field(
        default=SecretStr(DEV_AUTH_SECRET),
        description="HS256 secret used only when no JWT key is configured (local work).",
    )
    allow_dev_auth: bool = Field(
        default=False, description="Accept the development secret even on Cloud Run."
    )
    k_service: str | None = Field(default=None, description="Set by Cloud Run.")

    rate_limit_per_minute: int = Field(
        default=30, ge=0, le=100_000, description="Writes per user per minute; 0 turns it off."
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, le=100_000, description="Bucket size; defaults to the per-minute rate."
    )
    max_wait_seconds: float = Field(default=30.0, gt=0, le=30)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=10 * 1024 * 1024)

    @property
    def uses_dev_auth(self) -> bool:
        return not (self.jwt_hs256_secret or self.jwt_public_key or self.jwt_jwks_url)

    @property
    def burst(self) -> int:
        return self.rate_limit_burst or max(1, self.rate_limit_per_minute)

    @model_validator(mode="after")
    def _no_dev_auth_in_the_cloud(self) -> ApiSettings:
        default_secret = self.dev_auth_secret.get_secret_value() == DEV_AUTH_SECRET
        if self.k_service and self.uses_dev_auth and default_secret and not self.allow_dev_auth:
            raise ValueError(
                "no JWT key is configured on Cloud Run: set JWT_HS256_SECRET, JWT_PUBLIC_KEY or "
                "JWT_JWKS_URL (or ALLOW_DEV_AUTH=true for a throwaway deployment)"
            )
        return self
