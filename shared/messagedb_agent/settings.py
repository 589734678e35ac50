"""Every setting, read once from the environment (and a local `.env`) and validated at start.

The environment stays flat: field names are the variable names (DATABASE_URL, PUBSUB_TOPIC),
case-insensitive. In code the variables are grouped into frozen sections, one per concern
(`settings.database`, `settings.pubsub`, ...), so each part is handed only what it reads.
The variables several sections use (GOOGLE_CLOUD_PROJECT, K_SERVICE) are declared once, on
`Settings` itself, and what follows from them (the Pub/Sub project, JSON logs on Cloud Run,
the model in effect) is a property there.

Every variable has a default that works for local emulation, so a fresh checkout runs with no
configuration at all; Cloud deployments override them through environment variables. This
module loads pydantic only: every function's cold start reads it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings import PydanticBaseSettingsSource as SettingsSource

# Public on purpose: it only ever signs tokens for a developer's own machine, which is why the
# API refuses it on Cloud Run (see `Settings.serving_api`).
DEV_AUTH_SECRET = "dev-only-insecure-secret--never-use-outside-localhost"  # noqa: S105
DEFAULT_PUBSUB_PROJECT = "local-project"
DEFAULT_MODEL = "gemini-2.5-flash"

IpType = Literal["PUBLIC", "PRIVATE", "PSC"]
RefreshStrategy = Literal["LAZY", "BACKGROUND"]

# project:region:instance, where a domain-scoped project is itself `domain:project`.
_INSTANCE = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*:)?[a-z][a-z0-9-]*:[a-z0-9-]+:[a-z][a-z0-9-]*$")
_SERVICE_ACCOUNT_SUFFIX = ".gserviceaccount.com"
_SERVING_API = "serving_api"  # the validation context of `Settings.serving_api`


def _unset_if_blank(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- the database ----------------------------------------------------------------------------


class DatabaseSettings(_Section):
    """Where Message DB is and how each process pools its connections."""

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL with Message DB installed; unset means Cloud SQL "
        "(CLOUD_SQL_INSTANCE) or else the embedded server.",
    )
    db_pool_min_size: int = Field(
        default=1, ge=0, le=100, description="Connections each process's pool keeps open."
    )
    db_pool_max_size: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Connections each process's pool may open; Terraform sums them against "
        "the instance's max_connections.",
    )
    db_connect_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds to wait for a connection."
    )

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


class LocalSettings(_Section):
    """Local work only: the embedded server, the installer's cache, the CLI's user."""

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
    local_user: str = Field(
        default="local-user", description="The user the CLI acts as (the API uses the JWT's sub)."
    )

    @property
    def home(self) -> Path:
        return self.messagedb_agent_home.resolve()


class CloudSqlSettings(_Section):
    """Cloud SQL through the connector, logging in as the function's own IAM identity."""

    cloud_sql_instance: str | None = Field(
        default=None,
        description="Instance connection name, project:region:instance; set means Cloud SQL "
        "through the connector instead of DATABASE_URL or the embedded server.",
    )
    db_iam_user: str | None = Field(
        default=None,
        description="IAM database user: the service account's email without "
        "`.gserviceaccount.com` (the full email is accepted and shortened).",
    )
    db_name: str = Field(
        default="message_store", min_length=1, description="Database Message DB is in."
    )
    cloud_sql_ip_type: IpType = Field(
        default="PUBLIC", description="Which of the instance's addresses the connector uses."
    )
    cloud_sql_refresh_strategy: RefreshStrategy = Field(
        default="LAZY",
        description="LAZY fetches certificates when a connection needs them (serverless); "
        "BACKGROUND refreshes them ahead of time on a thread.",
    )

    @field_validator("cloud_sql_instance", "db_iam_user", mode="before")
    @classmethod
    def _stripped(cls, value: object) -> object:
        return _unset_if_blank(value.strip() if isinstance(value, str) else value)

    @field_validator("cloud_sql_ip_type", "cloud_sql_refresh_strategy", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("cloud_sql_instance")
    @classmethod
    def _instance_name(cls, value: str | None) -> str | None:
        if value is not None and not _INSTANCE.match(value):
            raise ValueError(
                f"CLOUD_SQL_INSTANCE={value!r} is not an instance connection name; it must be "
                "project:region:instance (`gcloud sql instances describe INSTANCE "
                "--format='value(connectionName)'` prints it)"
            )
        return value

    @field_validator("db_iam_user")
    @classmethod
    def _iam_user_name(cls, value: str | None) -> str | None:
        return None if value is None else value.removesuffix(_SERVICE_ACCOUNT_SUFFIX)

    @model_validator(mode="after")
    def _user_with_instance(self) -> Self:
        if self.cloud_sql_instance is not None and self.db_iam_user is None:
            raise ValueError(
                "CLOUD_SQL_INSTANCE is set but DB_IAM_USER is not: set it to the service "
                "account's IAM database user, e.g. my-function@my-project.iam"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.cloud_sql_instance is not None


# -- the agent -------------------------------------------------------------------------------


class ModelSettings(_Section):
    """Which model answers, and where (the project is GOOGLE_CLOUD_PROJECT)."""

    google_cloud_location: str = Field(default="us-central1", description="Vertex AI region.")
    model_name: str = Field(
        default="",
        description=f"`gemini-...`, `claude-...` (Vertex AI) or `offline`; empty picks "
        f"{DEFAULT_MODEL} when GOOGLE_CLOUD_PROJECT is set, else offline.",
    )
    vertex_api_endpoint: str | None = Field(
        default=None, description="Override the Vertex AI base URL (private endpoints, tests)."
    )
    system_prompt: str | None = Field(default=None, description="Replaces the default prompt.")


@dataclass(frozen=True, config=ConfigDict(defer_build=True))  # built when MCP_SERVERS is set
class McpServerConfig:
    """One MCP server to start: `env` is added to the SDK's safe default environment
    (PATH, HOME and the like), never the whole environment of this process."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
    command: list[str] = Field(min_length=1)
    env: dict[str, str] | None = None


def servers_from_json(text: str) -> list[McpServerConfig]:
    """Configs from JSON such as `[{"name": "files", "command": ["npx", "some-server"]}]`."""
    return TypeAdapter(list[McpServerConfig]).validate_json(text)


class EngineSettings(_Section):
    """The step protocol: limits, leases, timeouts, and the tools beyond the built-in ones."""

    max_iterations: int = Field(default=10, ge=1, le=100, description="Model calls per user turn.")
    max_llm_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries of one model call before the turn fails."
    )
    max_tool_attempts: int = Field(
        default=2, ge=1, le=10, description="Tries of one tool call before it is reported failed."
    )
    llm_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="How long a claimed model call is held before another step may retry it.",
    )
    tool_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a claimed tool call is held before another step may retry it.",
    )
    llm_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="Longest wait for one model answer."
    )
    tool_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Longest wait for one tool result."
    )
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
    mcp_servers: str | None = Field(
        default=None,
        description="JSON list of MCP servers whose tools the agent may use: "
        '[{"name": "files", "command": ["python", "-m", "server"]}]',
    )

    @field_validator("mcp_servers")
    @classmethod
    def _server_list(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        try:
            servers_from_json(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise ValueError(
                f"MCP_SERVERS is not a valid server list ({where}: {problem['msg']})"
            ) from None
        return value


class CallbackSettings(_Section):
    """Reply deliveries to the callback URLs threads name."""

    callback_signing_secret: SecretStr = Field(
        default=SecretStr("dev-only-callback-secret-change-me"),
        description="HMAC-SHA256 key that signs reply deliveries to callback URLs.",
    )
    delivery_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Longest wait for a callback URL to answer."
    )
    max_delivery_attempts: int = Field(
        default=5, ge=1, le=20, description="Tries of one reply delivery before it is given up."
    )


class ThreadSettings(_Section):
    """What a thread accepts, whoever writes to it (the API or the CLI)."""

    max_message_length: int = Field(
        default=5000, ge=1, le=100_000, description="Longest user message, in characters."
    )


# -- the edges -------------------------------------------------------------------------------


class ApiSettings(_Section):
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
        description="HS256 secret used only when no JWT key is configured (local work).",
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


class PubSubSettings(_Section):
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

    @field_validator("pubsub_project", "local_topic_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return _unset_if_blank(value)


class ObservabilitySettings(_Section):
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


class PriceConfig(_Section):
    input: Decimal = Field(ge=0, description="USD per million input tokens.")
    output: Decimal = Field(ge=0, description="USD per million output tokens.")


class PriceSettings(_Section):
    """What model calls cost; prices change more often than the code."""

    model_prices: dict[str, PriceConfig] = Field(
        default_factory=dict,
        description='JSON `{"model": {"input": 0.3, "output": 2.5}}`, USD per million tokens, '
        "laid over the defaults (a model named here replaces its default price).",
    )

    @field_validator("model_prices", mode="before")
    @classmethod
    def _from_json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value


# -- the whole surface -----------------------------------------------------------------------


class Settings(BaseSettings):
    """The whole configuration surface: the shared variables, and one section per concern.

    Keyword arguments are the flat variable names too: `Settings(database_url=...)`.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    google_cloud_project: str | None = Field(
        default=None,
        description="Google Cloud project: Vertex AI's (unset means the offline model), the "
        "default of PUBSUB_PROJECT, and the one Cloud Logging and Cloud Trace use.",
    )
    k_service: str | None = Field(
        default=None,
        description="Set by Cloud Run: JSON logs by default, the service name of spans, and no "
        "public development secret for the API.",
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    cloud_sql: CloudSqlSettings = Field(default_factory=CloudSqlSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    threads: ThreadSettings = Field(default_factory=ThreadSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    pubsub: PubSubSettings = Field(default_factory=PubSubSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    prices: PriceSettings = Field(default_factory=PriceSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: SettingsSource,
        env_settings: SettingsSource,
        dotenv_settings: SettingsSource,
        file_secret_settings: SettingsSource,
    ) -> tuple[SettingsSource, ...]:
        return init_settings, _FlatVariables(settings_cls, env_settings, dotenv_settings)

    @classmethod
    def variables(cls) -> frozenset[str]:
        """Every variable's name (lower case), shared and sectioned alike."""
        return _variables(cls)

    @model_validator(mode="before")
    @classmethod
    def _into_sections(cls, data: Any) -> Any:
        """Flat variables (from the environment, or keyword arguments) into their sections."""
        if not isinstance(data, Mapping):
            return data
        flat = {str(key).lower(): value for key, value in data.items()}
        shaped: dict[str, Any] = {}
        for name, section in _fields(cls).items():
            if section is None:
                if name in flat:
                    shaped[name] = flat[name]
                continue
            given = flat.get(name, {})
            values = dict(given)  # a section given whole (a mapping or a section model)
            values.update({key: flat[key] for key in section.model_fields if key in flat})
            shaped[name] = values
        return shaped

    @field_validator("google_cloud_project", "k_service", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return _unset_if_blank(value)

    @model_validator(mode="after")
    def _no_public_secret_on_cloud_run(self, info: ValidationInfo) -> Self:
        if info.context == _SERVING_API and self.k_service and self.api.accepts_public_secret:
            raise ValueError(
                "no JWT key is configured on Cloud Run: set JWT_HS256_SECRET, JWT_PUBLIC_KEY or "
                "JWT_JWKS_URL (or ALLOW_DEV_AUTH=true for a throwaway deployment)"
            )
        return self

    def serving_api(self) -> Self:
        """These settings, checked again for a process that serves the HTTP API: on Cloud Run
        it must not accept tokens signed with the public development secret.

        Only the API's process is refused: the other functions run on Cloud Run too, and no
        JWT key is given to them.
        """
        return self.model_validate(self._flat(), context=_SERVING_API)

    def replace(self, **changes: Any) -> Self:
        """A copy with some variables (flat names) changed, validated again."""
        return self.model_validate({**self._flat(), **changes})

    def _flat(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for name, section in _fields(type(self)).items():
            value = getattr(self, name)
            if section is None:
                flat[name] = value
            else:
                flat.update(dict(value))
        return flat

    @property
    def effective_model(self) -> str:
        if self.model.model_name:
            return self.model.model_name
        return DEFAULT_MODEL if self.google_cloud_project else "offline"

    @property
    def pubsub_project(self) -> str:
        """PUBSUB_PROJECT, else GOOGLE_CLOUD_PROJECT, else the emulator's local project."""
        return self.pubsub.pubsub_project or self.google_cloud_project or DEFAULT_PUBSUB_PROJECT

    @property
    def json_logs(self) -> bool:
        """LOG_FORMAT when set; else JSON on Cloud Run, where Cloud Logging reads it."""
        if self.observability.log_format is not None:
            return self.observability.log_format == "json"
        return self.k_service is not None


@functools.cache
def _fields(cls: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Each field of `cls` and, for a section, its model (None for a shared variable)."""
    found: dict[str, type[BaseModel] | None] = {}
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found[name] = annotation
        else:
            found[name] = None
    return found


@functools.cache
def _variables(cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        key
        for name, section in _fields(cls).items()
        for key in (section.model_fields if section is not None else (name,))
    )


class _FlatVariables(SettingsSource):
    """The environment and the dotenv file, by variable name, for `Settings` to sort into its
    sections (the built-in sources look a section up as one JSON variable named after it)."""

    def __init__(self, settings_cls: type[BaseSettings], *sources: SettingsSource) -> None:
        super().__init__(settings_cls)
        self._sources = [s for s in sources if isinstance(s, EnvSettingsSource)]

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # `__call__` reads by variable, not by field

    def __call__(self) -> dict[str, Any]:
        names = _variables(self.settings_cls)
        found: dict[str, Any] = {}
        for source in reversed(self._sources):  # the first source wins
            found.update({k: v for k, v in source.env_vars.items() if k in names})
        return found
