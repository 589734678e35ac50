"""The provider-neutral shape of an LLM conversation, request and response.

Projections produce these from events; providers translate them to their wire formats. They
are plain frozen values, cheap to build for every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from messagedb_agent.events.values import TokenUsage, ToolCall


@dataclass(frozen=True, slots=True)
class UserTurn:
    text: str


@dataclass(frozen=True, slots=True)
class ContextSummary(UserTurn):
    """The summary that stands for the oldest part of a long conversation. It travels as a
    user turn (every provider accepts one first); the offline model tells it apart."""


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    """`thought_signatures` maps a tool call id to the opaque signature the provider put on it
    (base64, as on the wire); Gemini 3 wants it back exactly as it came."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    thought_signatures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_call_id: str
    name: str
    content: Any
    is_error: bool = False


Message = UserTurn | AssistantTurn | ToolResult


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: the JSON schema both providers are given."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LLMConfig:
    model: str
    system_prompt: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    timeout_seconds: float = 60.0
    # A reply cut at `max_output_tokens` is an `errors.truncated` failure, so the engine can ask
    # again with more room; once the budget is at its ceiling, a cut reply that has text and
    # no tool calls is returned instead (finish_reason "max_tokens"). A cut call never is.
    accept_truncated: bool = False
    # Called with each piece of the reply's text as the model makes it, when the client
    # streams (live replies, `live/deltas.py`); the response still carries the whole text.
    on_text: Callable[[str], None] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LLMResponse:
    text: str
    tool_calls: tuple[ToolCall, ...]
    model_name: str
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    finish_reason: str | None = None
    # Tool call id -> provider signature, to be replayed on that call (see `AssistantTurn`).
    thought_signatures: dict[str, str] = field(default_factory=dict)


class LLMError(Exception):
    """A failed call, classified so the engine knows whether a retry can help."""

    def __init__(
        self, message: str, *, kind: str, retryable: bool, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.status = status


class LLMClient(Protocol):
    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse: ...
