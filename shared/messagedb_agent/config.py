"""Settings read once from the environment (and a local `.env`), validated at start.

Every knob has a default that works for local emulation, so a fresh checkout runs with no
configuration at all; Cloud deployments override them through environment variables.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The whole configuration surface; field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL with Message DB installed; unset means the embedded server.",
    )
    messagedb_agent_home: Path = Field(
        default=Path(".local"),
        description="Project-local folder for the embedded server's data and cached downloads.",
    )
    messagedb_tarball: Path | None = Field(
        default=None,
        description="Install Message DB from this local npm tarball instead of `npm pack`.",
    )
    messagedb_database: str = Field(
        default="message_store",
        description="Database the embedded server creates and installs Message DB into.",
    )
    db_pool_min_size: int = Field(default=1, ge=0, le=100)
    db_pool_max_size: int = Field(default=5, ge=1, le=100)
    db_connect_timeout: float = Field(default=10.0, gt=0, le=120)

    google_cloud_project: str | None = Field(
        default=None, description="Vertex AI project; unset means the offline model is used."
    )
    google_cloud_location: str = Field(default="us-central1", description="Vertex AI region.")
    model_name: str = Field(
        default="",
        description="`gemini-...`, `claude-...` (Vertex AI) or `offline`; empty picks "
        "gemini-2.5-flash when GOOGLE_CLOUD_PROJECT is set, else offline.",
    )
    vertex_api_endpoint: str | None = Field(
        default=None, description="Override the Vertex AI base URL (private endpoints, tests)."
    )
    system_prompt: str | None = Field(default=None, description="Replaces the default prompt.")

    max_iterations: int = Field(default=10, ge=1, le=100, description="Model calls per user turn.")
    max_llm_attempts: int = Field(default=3, ge=1, le=10)
    max_tool_attempts: int = Field(default=2, ge=1, le=10)
    llm_lease_seconds: float = Field(default=120.0, gt=0, le=3600)
    tool_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    tool_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    step_max_steps: int = Field(
        default=25,
        ge=1,
        le=200,
        description="Steps one step-function delivery may run in a row (one commit each).",
    )
    step_budget_seconds: float = Field(
        default=60.0,
        gt=0,
        le=540,
        description="After this long a delivery stops chaining and hands on to a new one.",
    )
    view_cache_events: int = Field(
        default=50_000,
        ge=0,
        le=5_000_000,
        description="Events of recently driven threads a warm instance keeps in memory.",
    )
    max_message_length: int = Field(default=5000, ge=1, le=100_000)
    mcp_servers: str | None = Field(
        default=None,
        description="JSON list of MCP servers whose tools the agent may use: "
        '[{"name": "files", "command": ["python", "-m", "server"]}]',
    )
    callback_signing_secret: SecretStr = Field(
        default=SecretStr("dev-only-callback-secret-change-me"),
        description="HMAC-SHA256 key that signs reply deliveries to callback URLs.",
    )
    delivery_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    max_delivery_attempts: int = Field(default=5, ge=1, le=20)
    local_user: str = Field(
        default="local-user", description="The user the CLI acts as (the API uses the JWT's sub)."
    )

    @field_validator("mcp_servers")
    @classmethod
    def _mcp_servers(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        from pydantic import ValidationError

        from messagedb_agent.tools.mcp_client import servers_from_json

        try:
            servers_from_json(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise ValueError(
                f"MCP_SERVERS is not a valid server list ({where}: {problem['msg']})"
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "DATABASE_URL must start with postgresql:// (e.g. postgresql://user:pass@host:5432/db)"
            )
        return value

    @property
    def effective_model(self) -> str:
        if self.model_name:
            return self.model_name
        return "gemini-2.5-flash" if self.google_cloud_project else "offline"

    @property
    def home(self) -> Path:
        return self.messagedb_agent_home.resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; cached because functions read them on every invocation."""
    return Settings()
