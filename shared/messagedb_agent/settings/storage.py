"""Where Message DB is: a URL, the embedded server's local state, or Cloud SQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from messagedb_agent.settings.section import Section, unset_if_blank

IpType = Literal["PUBLIC", "PRIVATE", "PSC"]
RefreshStrategy = Literal["LAZY", "BACKGROUND"]

# project:region:instance, where a domain-scoped project is itself `domain:project`.
_INSTANCE = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*:)?[a-z][a-z0-9-]*:[a-z0-9-]+:[a-z][a-z0-9-]*$")
_SERVICE_ACCOUNT_SUFFIX = ".gserviceaccount.com"

# -- the database ----------------------------------------------------------------------------


class DatabaseSettings(Section):
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
        default=10.0, gt=0, le=120, description="Seconds to wait for a new connection to open."
    )
    db_wait_timeout: float = Field(
        default=2.0,
        gt=0,
        le=120,
        description="Seconds a request waits for a pooled connection before the database "
        "counts as unavailable (the API answers 503; then it fails fast for a second).",
    )
    db_search_path_option: bool = Field(
        default=True,
        description="Send search_path=message_store,public as a connection startup option. "
        "Turn it off behind a transaction-mode pooler (Cloud SQL Managed Connection Pooling), "
        "which may refuse startup options; the installer sets the same search_path on each "
        "function's database role.",
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


class LocalSettings(Section):
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


class CloudSqlSettings(Section):
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
        return unset_if_blank(value.strip() if isinstance(value, str) else value)

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
