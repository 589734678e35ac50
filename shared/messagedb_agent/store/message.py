"""The row Message DB returns, and the row a writer hands it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageData:
    """One stored message, as `message_store.message` describes it, JSON already decoded."""

    id: str
    stream_name: str
    type: str
    position: int
    global_position: int
    data: dict[str, Any]
    metadata: dict[str, Any] | None
    time: datetime


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to write; `id` is chosen by the writer when a retry must not write twice."""

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None
    id: str | None = field(default=None)
