"""What a chat platform's endpoint is to the ingest function: raw signed bytes in, an answer
in the platform's own terms out. Each platform checks its own signature on the raw body, so
the API hands over the bytes as they came."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


Endpoint = Callable[[bytes, Mapping[str, str]], Answer]


def json_object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: a platform's payload read without
    trusting its shape (a signed request is no promise of a well-formed one)."""
    return value if isinstance(value, dict) else {}


class Inbound(Protocol):
    def endpoints(self) -> Mapping[str, Endpoint]:
        """The platform's endpoints by the last part of their path (`events`)."""
        ...
