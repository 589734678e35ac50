"""LLM steps: the claim that starts one, and the response, compaction or failure that ends it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from messagedb_agent.events.base import Claim, Event, Failure
from messagedb_agent.events.mapper import upcaster
from messagedb_agent.events.values import TokenUsage, ToolCall


class LLMCallRequested(Claim):
    """Claims an LLM step: written with `expected_version`, so only one worker wins it.

    The context is not copied here (it is a projection of the stream up to
    `context_position`); the lease tells others when a silent claimant may be replaced.
    """

    type: ClassVar[str] = "LLMCallRequested"
    schema_version: ClassVar[int] = 2

    step_id: str
    attempt: int = 1
    model: str
    context_position: int
    context_messages: int  # the conversation messages the call was given
    worker: str | None = None
    # "compaction": the call summarises the oldest part of the context (see ContextCompacted)
    purpose: Literal["reply", "compaction"] = "reply"
    max_output_tokens: int | None = None  # the output budget this attempt was given


class LLMResponseReceived(Event):
    type: ClassVar[str] = "LLMResponseReceived"
    asks_for_step: ClassVar[bool] = True  # its tool calls, or its reply's delivery

    step_id: str
    response_text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    model_name: str
    token_usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    latency_ms: float | None = None
    # Tool call id -> the provider's opaque signature on that call (Gemini 3's thought
    # signatures), sent back with the call on every later request, exactly as it came.
    thought_signatures: dict[str, str] = Field(default_factory=dict)


class LLMCallFailed(Failure):
    type: ClassVar[str] = "LLMCallFailed"
    schema_version: ClassVar[int] = 2

    step_id: str
    error_message: str
    error_kind: str = "unknown"
    attempt: int = 1  # the attempt that failed


class ModelUnavailable(LLMCallFailed):
    """The model could not be used for a reason only an operator can fix (credentials,
    permissions, the model's name or region, a quota), or it stayed unreachable through every
    attempt. The thread waits and tries again at `retry_at`, however many times it takes: a
    fault in the deployment never ends a conversation. `notice` is what the user is told, on
    the first of a run of these only."""

    type: ClassVar[str] = "ModelUnavailable"
    schema_version: ClassVar[int] = 1

    notice: str | None = None


class ContextCompacted(Event):
    """The outcome of a compaction step: `summary` stands for every context message that
    sorts before the user message at `first_kept_position` (the previous summary included).

    The events themselves stay: the transcript, replay and forks still show everything; only
    the LLM context projection reads the summary in their place.
    """

    type: ClassVar[str] = "ContextCompacted"
    asks_for_step: ClassVar[bool] = True  # the reply call that reads the summary

    step_id: str
    summary: str
    first_kept_position: int
    summarised_messages: int
    tokens_before: int  # the estimated context tokens that made the compaction necessary
    model_name: str
    token_usage: TokenUsage = TokenUsage()
    latency_ms: float | None = None


@upcaster("LLMCallRequested", 1)
def _message_count_named_for_the_context(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["context_messages"] = data.pop("message_count", 0)
    return data


@upcaster("LLMCallFailed", 1)
def _retry_count_was_the_attempt(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["attempt"] = data.pop("retry_count", 1)
    return data
