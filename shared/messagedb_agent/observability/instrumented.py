"""The engine's two effects, observed from outside: a span per model call and per tool call.

`TracedLLM` and `TracedTools` wrap whatever model client and tools executor the composition
root built, so the engine stays unaware of tracing. Their spans follow OpenTelemetry's GenAI
conventions (inference and execute-tool spans, see `semconv`) and record models, tokens and
error kinds, never message bodies, arguments or results (those are in the event log, where
access is controlled: the conventions' opt-in content attributes stay off). What they see is
also added to the current `StepTally`, which the step handler's one line per delivery reports,
and the tally names the thread the spans' `gen_ai.conversation.id` gives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import (
    LLMClient,
    LLMConfig,
    LLMError,
    LLMResponse,
    Message,
    ToolSpec,
)
from messagedb_agent.observability import semconv
from messagedb_agent.observability.logging import get_logger
from messagedb_agent.observability.tracing import AttributeValue, can_record, mark_failed, span

if TYPE_CHECKING:
    from messagedb_agent.engine.step import ToolExecutor
    from messagedb_agent.tools.context import ToolContext, ToolOutcome

log = get_logger(__name__)
# The stdlib logger structlog's level filter asks: when it says no, a debug line is skipped
# before its fields are even gathered (the filter alone costs tens of microseconds a line).
# structlog's own `cache_logger_on_first_use` is left off: a cached logger keeps the processor
# chain it first saw, so a later `configure()` (or a test's capture) would not reach it.
_stdlib_log = logging.getLogger(__name__)


def _debugging() -> bool:
    return _stdlib_log.isEnabledFor(logging.DEBUG)


@dataclass(slots=True)
class StepTally:
    """What one delivery spent: model calls and their tokens, tool calls and their failures;
    and the thread it works on (`gen_ai.conversation.id` of its model calls)."""

    conversation_id: str | None = None
    llm_calls: int = 0
    llm_failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    tool_failures: int = 0

    def as_fields(self) -> dict[str, int]:
        return {
            "llm_calls": self.llm_calls,
            "llm_failures": self.llm_failures,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tool_calls": self.tool_calls,
            "tool_failures": self.tool_failures,
        }


_tally: ContextVar[StepTally | None] = ContextVar("step_tally", default=None)


def current_tally() -> StepTally | None:
    return _tally.get()


@contextmanager
def tallying(conversation_id: str | None = None) -> Iterator[StepTally]:
    """Count the model and tool calls made inside this block, for this conversation."""
    tally = StepTally(conversation_id=conversation_id)
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


class TracedLLM:
    """An LLMClient that reports each call as a GenAI inference span, `chat {model}`."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        """The wrapped client's own attributes stay reachable."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        tally = _tally.get()
        # Known before the call: given at span creation, where samplers can see them; built
        # only when a span can record at all.
        attributes: dict[str, AttributeValue | None] | None = None
        recording = can_record()
        if recording:
            attributes = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_CHAT,
                semconv.GEN_AI_PROVIDER_NAME: semconv.provider_name(config.model),
                semconv.GEN_AI_REQUEST_MODEL: config.model,
                semconv.GEN_AI_CONVERSATION_ID: tally.conversation_id if tally else None,
                semconv.GEN_AI_REQUEST_MAX_TOKENS: config.max_output_tokens,
                semconv.GEN_AI_REQUEST_TEMPERATURE: config.temperature,
                "agent.llm.message_count": len(messages),
                "agent.llm.tool_count": len(tools),
            }
        kind = SpanKind.INTERNAL if semconv.runs_in_process(config.model) else SpanKind.CLIENT
        name = f"{semconv.OPERATION_CHAT} {config.model}"
        with _span(recording, name, kind, attributes) as current:
            started = time.perf_counter()
            try:
                response = self.inner.call(messages, tools, config)
            except LLMError as error:
                latency_ms = _elapsed_ms(started)
                current.set_attribute("agent.llm.retryable", error.retryable)
                if error.status is not None:
                    current.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, error.status)
                mark_failed(current, error.kind)  # error.type: a low-cardinality kind
                if tally is not None:
                    tally.llm_failures += 1
                if _debugging():
                    log.debug(
                        "llm call failed",
                        model=config.model,
                        error_kind=error.kind,
                        retryable=error.retryable,
                        latency_ms=latency_ms,
                    )
                raise
            latency_ms = _elapsed_ms(started)
            usage = response.token_usage
            if current.is_recording():
                current.set_attributes(
                    {
                        semconv.GEN_AI_RESPONSE_MODEL: response.model_name,
                        semconv.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
                        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
                        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cached_input_tokens,
                        semconv.GEN_AI_RESPONSE_FINISH_REASONS: (
                            response.finish_reason or "unknown",
                        ),
                        "agent.llm.tool_call_count": len(response.tool_calls),
                    }
                )
        if tally is not None:
            tally.llm_calls += 1
            tally.input_tokens += usage.input_tokens
            tally.output_tokens += usage.output_tokens
        if _debugging():
            log.debug(
                "llm call",
                model=response.model_name,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                latency_ms=latency_ms,
                tool_calls=len(response.tool_calls),
            )
        return response


class TracedTools:
    """A ToolExecutor that reports each call as a GenAI `execute_tool {tool}` span (INTERNAL:
    the tool runs in this process)."""

    def __init__(self, inner: ToolExecutor) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        """The wrapped executor's own attributes (its registry, which its owner closes)."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def specs(self) -> list[ToolSpec]:
        return self.inner.specs()

    def is_pure(self, call: ToolCall) -> bool:
        return self.inner.is_pure(call)

    def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        attributes: dict[str, AttributeValue | None] | None = None
        recording = can_record()
        if recording:
            attributes = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EXECUTE_TOOL,
                semconv.GEN_AI_TOOL_NAME: call.name,
                semconv.GEN_AI_TOOL_TYPE: semconv.TOOL_TYPE_FUNCTION,
                semconv.GEN_AI_TOOL_CALL_ID: call.id,
                # not in the execute-tool span's table, but "application developers that
                # manage conversation history MAY add conversation id to GenAI and other spans"
                semconv.GEN_AI_CONVERSATION_ID: semconv.conversation_id(ctx.stream_name),
                "agent.step_id": ctx.step_id,
            }
        name = f"{semconv.OPERATION_EXECUTE_TOOL} {call.name}"
        with _span(recording, name, SpanKind.INTERNAL, attributes) as current:
            result = self.inner.run(call, ctx)
            if current.is_recording():
                current.set_attribute("agent.tool.ok", result.ok)
                if not result.ok:
                    current.set_attribute("agent.tool.retryable", result.retryable)
                    mark_failed(current, result.error_kind or "exception")
        tally = _tally.get()
        if tally is not None:
            tally.tool_calls += 1
            tally.tool_failures += 0 if result.ok else 1
        if _debugging():
            log.debug(
                "tool call",
                tool=call.name,
                ok=result.ok,
                error_kind=result.error_kind,
                duration_ms=round(result.execution_time_ms, 3),
            )
        return result


def _span(
    recording: bool,
    name: str,
    kind: SpanKind,
    attributes: dict[str, AttributeValue | None] | None,
) -> AbstractContextManager[Span]:
    """A new span when one can record; else the current one as it is, without entering
    `span` at all (what `span` would yield then, for a fraction of its cost: this runs on
    every step)."""
    if recording:
        return span(name, kind=kind, attributes=attributes)
    return nullcontext(trace.get_current_span())


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
