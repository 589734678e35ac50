"""How the process logs and traces, read from the environment like every other setting."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ObservabilitySettings(BaseSettings):
    """Field names are the environment variable names (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

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
    google_cloud_project: str | None = Field(
        default=None, description="Project that Cloud Logging trace ids and Cloud Trace use."
    )
    k_service: str | None = Field(default=None, description="Set by Cloud Run.")

    @property
    def json_logs(self) -> bool:
        if self.log_format is not None:
            return self.log_format == "json"
        return self.k_service is not None
