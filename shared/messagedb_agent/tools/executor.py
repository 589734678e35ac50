"""Run one tool call the model asked for, and turn whatever happens into a `ToolOutcome`.

Nothing a call does escapes as an exception: an unknown tool, bad arguments, a timeout or a
crash all come back as outcomes the engine records as events and the model reads. The tool
runs in a worker thread so a hung call cannot hold the step past its timeout; the thread is
abandoned (Python cannot kill it), which is safe because tools that write are idempotent.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from typing import Any

from pydantic_core import to_jsonable_python

from messagedb_agent.events.values import ToolCall
from messagedb_agent.llm.types import ToolSpec
from messagedb_agent.tools.context import ToolContext, ToolOutcome
from messagedb_agent.tools.errors import ToolError
from messagedb_agent.tools.registry import ToolRegistry, is_user_argument

_INT64 = 2**63


def execute_tool(
    registry: ToolRegistry, call: ToolCall, ctx: ToolContext, timeout: float = 10.0
) -> ToolOutcome:
    """Validate, run under `timeout` seconds, and report; never raises for the tool's sake."""
    started = time.perf_counter()

    def failed(kind: str, message: str, retryable: bool = False) -> ToolOutcome:
        return ToolOutcome(False, None, message, kind, retryable, _elapsed_ms(started))

    declared = registry.get(call.name)
    if declared is None:
        available = ", ".join(registry.names()) or "none"
        return failed("unknown_tool", f"There is no tool named {call.name!r}. Tools: {available}.")
    claimed = [name for name in call.arguments if is_user_argument(name)]
    if claimed:
        return failed(
            "forbidden",
            f"{call.name} does not accept {', '.join(repr(n) for n in claimed)}: tools always act"
            " for the signed-in user. Call it again without that argument.",
        )
    try:
        arguments = declared.validate(dict(call.arguments))
    except ToolError as exc:
        return failed(exc.kind, str(exc), exc.retryable)

    box: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            box.append((True, declared.run(ctx, arguments)))
        except BaseException as exc:  # a tool's crash, even SystemExit, is its outcome
            box.append((False, exc))

    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(work,), name=f"tool:{call.name}", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if not box:
        return failed("timeout", f"{call.name} did not finish within {timeout:g} s.", True)
    succeeded, value = box[0]
    if succeeded:
        return ToolOutcome(True, json_safe(value), None, None, False, _elapsed_ms(started))
    if isinstance(value, ToolError):
        return failed(value.kind, str(value) or type(value).__name__, value.retryable)
    return failed("exception", f"{call.name} failed: {type(value).__name__}: {value}")


class RegistryTools:
    """The engine's tools: a registry's specs, each call run through `execute_tool`."""

    def __init__(self, registry: ToolRegistry, timeout: float = 10.0) -> None:
        self.registry = registry
        self.timeout = timeout
        self._specs = registry.specs()

    def specs(self) -> list[ToolSpec]:
        return self._specs

    def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        return execute_tool(self.registry, call, ctx, self.timeout)


def json_safe(value: Any) -> Any:
    """A JSON value that survives any JSON encoder: no NaN, no integers past 64 bits."""
    return _tidy(to_jsonable_python(value, fallback=repr))


def _tidy(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _tidy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tidy(item) for item in value]
    return str(value)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
