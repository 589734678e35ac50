"""The relay's settings: how long one call sweeps, and how long it keeps sweeping."""

from __future__ import annotations

from pydantic import Field, model_validator

from messagedb_agent.settings.section import Section


class RelaySettings(Section):
    """The relay: how long a pass may catch up, and how long one call keeps passing."""

    relay_budget_seconds: float = Field(
        default=40.0,
        gt=0,
        le=3600,
        description="How long one relay pass may sweep a backlog before it stops and reports "
        "the lag it leaves; below the scheduler's interval and the function's timeout.",
    )
    relay_loop_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="How long one relay call keeps sweeping, a pass every RELAY_TICK_SECONDS, "
        "so leases and backoffs are taken over within seconds between scheduler calls; 0 is "
        "one pass per call (local work and tests; Terraform sets 50).",
    )
    relay_tick_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Pause between two passes of one looping relay call.",
    )

    @model_validator(mode="after")
    def _tick_within_loop(self) -> RelaySettings:
        if self.relay_loop_seconds and self.relay_tick_seconds > self.relay_loop_seconds:
            raise ValueError("RELAY_TICK_SECONDS must not exceed RELAY_LOOP_SECONDS")
        return self
