"""What every settings section shares: frozen, and no variable it does not declare."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)


def unset_if_blank(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
