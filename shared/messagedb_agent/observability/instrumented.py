"""The engine's two effects, observed from outside: a span per model call and per tool call.

`TracedLLM` and `TracedTools` wrap whatever model client and tools executor the composition
root built, so the engine stays unaware of tracing. They record counts, sizes, durations and
error kinds, never message bodies, arguments or results (those are in the event log, where
access is controlled). What they see is also added to the current `StepTally`, which the step
handler's one line per delivery reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import (
    LLMClient,
    LLMConfig,
    LLMError,
    LLMResponse,
    Message,
    ToolSpec,
)
from messagedb_agent.observability.logging import get_logger
from messagedb_agent.observability.tracing import AttributeValue, mark_failed, span

if TYPE_CHECKING:
    from messagedb_agent.engine.step import ToolExecutor
    from messagedb_agent.tools.context import ToolContext, ToolOutcome

log = get_logger(__name__)


@dataclass(slots=True)
class StepTally:
    """What one delivery spent: model calls and their tokens, tool calls and their failures."""

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
def tallying() -> Iterator[StepTally]:
    """Count the model and tool calls made inside this block."""
    tally = StepTally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


class TracedLLM:
    """An LLMClient that reports each call as a `llm.call` span (GenAI semantic conventions)."""

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
        attributes: dict[str, AttributeValue | None] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": config.model,
            "llm.message_count": len(messages),
            "llm.tool_count": len(tools),
        }
        with span(f"chat {config.model}", kind=SpanKind.CLIENT, attributes=attributes) as current:
            started = time.perf_counter()
            try:
                response = self.inner.call(messages, tools, config)
            except LLMError as error:
                latency_ms = _elapsed_ms(started)
                current.set_attributes(
                    {"llm.latency_ms": latency_ms, "llm.retryable": error.retryable}
                )
                if error.status is not None:
                    current.set_attribute("http.response.status_code", error.status)
                mark_failed(current, error.kind)
                if tally is not None:
                    tally.llm_failures += 1
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
            current.set_attributes(
                {
                    "gen_ai.response.model": response.model_name,
                    "gen_ai.usage.input_tokens": usage.input_tokens,
                    "gen_ai.usage.output_tokens": usage.output_tokens,
                    "gen_ai.response.finish_reasons": (response.finish_reason or "unknown",),
                    "llm.latency_ms": latency_ms,
                    "llm.tool_call_count": len(response.tool_calls),
                }
            )
        if tally is not None:
            tally.llm_calls += 1
            tally.input_tokens += usage.input_tokens
            tally.output_tokens += usage.output_tokens
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
    """A ToolExecutor that reports each call as an `execute_tool` span."""

    def __init__(self, inner: ToolExecutor) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        """The wrapped executor's own attributes (its registry, which its owner closes)."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def specs(self) -> list[ToolSpec]:
        return self.inner.specs()

    def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        attributes: dict[str, AttributeValue | None] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "agent.step_id": ctx.step_id,
        }
        with span(f"execute_tool {call.name}", attributes=attributes) as current:
            result = self.inner.run(call, ctx)
            current.set_attributes(
                {"tool.ok": result.ok, "tool.duration_ms": round(result.execution_time_ms, 3)}
            )
            if not result.ok:
                current.set_attribute("tool.retryable", result.retryable)
                mark_failed(current, result.error_kind or "exception")
        tally = _tally.get()
        if tally is not None:
            tally.tool_calls += 1
            tally.tool_failures += 0 if result.ok else 1
        log.debug(
            "tool call",
            tool=call.name,
            ok=result.ok,
            error_kind=result.error_kind,
            duration_ms=round(result.execution_time_ms, 3),
        )
        return result


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
