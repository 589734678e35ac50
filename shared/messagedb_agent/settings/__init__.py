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
from collections.abc import Mapping
from typing import Any, Self

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings import PydanticBaseSettingsSource as SettingsSource

from messagedb_agent.settings.agent import (
    DEFAULT_MODEL,
    CallbackSettings,
    EngineSettings,
    ModelSettings,
    PriceSettings,
    ThreadSettings,
)
from messagedb_agent.settings.channels import GoogleChatSettings, SlackSettings, TelegramSettings
from messagedb_agent.settings.relay import RelaySettings
from messagedb_agent.settings.section import unset_if_blank
from messagedb_agent.settings.serving import (
    DEFAULT_PUBSUB_PROJECT,
    ApiSettings,
    ObservabilitySettings,
    PubSubSettings,
)
from messagedb_agent.settings.storage import CloudSqlSettings, DatabaseSettings, LocalSettings

_SERVING_API = "serving_api"  # the validation context of `Settings.serving_api`


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
    relay: RelaySettings = Field(default_factory=RelaySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    pubsub: PubSubSettings = Field(default_factory=PubSubSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    prices: PriceSettings = Field(default_factory=PriceSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    google_chat: GoogleChatSettings = Field(default_factory=GoogleChatSettings)

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
        return unset_if_blank(value)

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
