"""Running one call: validation, the user guard, timeouts, crashes and JSON-safe results."""

from __future__ import annotations

import contextvars
import math
import threading
import time
from datetime import datetime
from typing import Any

import pytest

from messagedb_agent.events import ToolCall
from messagedb_agent.tools import (
    ToolContext,
    ToolRegistry,
    TransientToolError,
    default_registry,
    execute_tool,
    tool,
)
from messagedb_agent.tools.executor import RegistryTools, ToolWorkers


@tool
def slow(seconds: float) -> dict[str, float]:
    """Sleep, then report how long."""
    time.sleep(seconds)
    return {"slept": seconds}


@tool
def broken(kind: str) -> None:
    """Fail on purpose."""
    if kind == "transient":
        raise TransientToolError("the backend is warming up")
    raise RuntimeError("disk on fire")


@tool
def whoami(ctx: ToolContext) -> dict[str, str]:
    """Report the acting user."""
    return {"owner": ctx.owner}


@tool
def awkward() -> dict[Any, Any]:
    """Return values JSON cannot hold as they are."""
    return {
        "when": datetime(2025, 1, 2, 3, 4, 5),
        "tags": {"b"},
        "pair": (1, 2),
        "huge": 2**80,
        "nan": math.nan,
        7: "seven",
    }


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([slow, broken, whoami, awkward, *default_registry()])


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id="call-1", name=name, arguments=arguments)


def test_successful_call_returns_the_result_and_a_duration(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    outcome = execute_tool(registry, call("echo", message="hi"), offline_ctx)
    assert outcome.ok
    assert outcome.result == {"message": "hi"}
    assert (outcome.error_kind, outcome.error_message, outcome.retryable) == (None, None, False)
    assert outcome.execution_time_ms >= 0


def test_unknown_tool_names_the_available_ones(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    outcome = execute_tool(registry, call("teleport"), offline_ctx)
    assert not outcome.ok
    assert outcome.error_kind == "unknown_tool"
    assert "teleport" in (outcome.error_message or "")
    assert "echo" in (outcome.error_message or "")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "'message' is required"),
        ({"message": "hi", "volume": 11}, "'volume' is not a parameter"),
        ({"message": ["not", "text"]}, "'message': Input should be a valid string"),
    ],
)
def test_invalid_arguments_are_an_outcome_not_an_exception(
    registry: ToolRegistry, offline_ctx: ToolContext, arguments: dict[str, Any], expected: str
) -> None:
    outcome = execute_tool(
        registry, ToolCall(id="c", name="echo", arguments=arguments), offline_ctx
    )
    assert not outcome.ok
    assert outcome.error_kind == "invalid_arguments"
    assert not outcome.retryable
    assert expected in (outcome.error_message or "")


def test_wrong_enum_value_lists_the_allowed_ones(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    outcome = execute_tool(registry, call("list_tasks", status="done"), offline_ctx)
    assert outcome.error_kind == "invalid_arguments"
    assert "'all', 'pending' or 'completed'" in (outcome.error_message or "")


@pytest.mark.parametrize("name", ["user_id", "owner", "user", "userId"])
def test_model_supplied_user_arguments_are_refused(
    registry: ToolRegistry, offline_ctx: ToolContext, name: str
) -> None:
    outcome = execute_tool(registry, call("whoami", **{name: "mallory"}), offline_ctx)
    assert not outcome.ok
    assert outcome.error_kind == "forbidden"
    assert name in (outcome.error_message or "")


def test_the_user_always_comes_from_the_context(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    outcome = execute_tool(registry, call("whoami"), offline_ctx)
    assert outcome.result == {"owner": offline_ctx.owner}


def test_slow_tool_times_out_as_retryable(registry: ToolRegistry, offline_ctx: ToolContext) -> None:
    started = time.perf_counter()
    outcome = execute_tool(registry, call("slow", seconds=2.0), offline_ctx, timeout=0.2)
    assert time.perf_counter() - started < 1.0
    assert not outcome.ok
    assert (outcome.error_kind, outcome.retryable) == ("timeout", True)
    assert "0.2 s" in (outcome.error_message or "")
    assert 150 <= outcome.execution_time_ms < 1000


def test_tool_within_its_timeout_succeeds(registry: ToolRegistry, offline_ctx: ToolContext) -> None:
    outcome = execute_tool(registry, call("slow", seconds=0.01), offline_ctx, timeout=2.0)
    assert outcome.ok
    assert outcome.result == {"slept": 0.01}


def test_unexpected_exception_is_captured_and_not_retryable(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    outcome = execute_tool(registry, call("broken", kind="bug"), offline_ctx)
    assert not outcome.ok
    assert (outcome.error_kind, outcome.retryable) == ("exception", False)
    assert "RuntimeError: disk on fire" in (outcome.error_message or "")


def test_transient_error_is_retryable(registry: ToolRegistry, offline_ctx: ToolContext) -> None:
    outcome = execute_tool(registry, call("broken", kind="transient"), offline_ctx)
    assert (outcome.error_kind, outcome.retryable) == ("exception", True)
    assert outcome.error_message == "the backend is warming up"


def test_tool_input_errors_raised_inside_the_tool_are_invalid_arguments(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    outcome = execute_tool(registry, call("calculate", expression="1/0"), offline_ctx)
    assert (outcome.error_kind, outcome.retryable) == ("invalid_arguments", False)
    assert outcome.error_message == "Division by zero is undefined."


def test_results_are_made_json_safe(registry: ToolRegistry, offline_ctx: ToolContext) -> None:
    outcome = execute_tool(registry, call("awkward"), offline_ctx)
    assert outcome.result == {
        "when": "2025-01-02T03:04:05",
        "tags": ["b"],
        "pair": [1, 2],
        "huge": str(2**80),
        "nan": None,
        "7": "seven",
    }


def test_calls_reuse_the_pools_threads(registry: ToolRegistry, offline_ctx: ToolContext) -> None:
    workers = ToolWorkers(keep=2, prestart=1)
    for _ in range(20):
        outcome = execute_tool(registry, call("whoami"), offline_ctx, 2.0, workers)
        assert outcome.ok
    assert workers.threads == 1


def test_a_hung_call_does_not_hold_up_the_next_one(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    workers = ToolWorkers(keep=1, prestart=1)
    hung = execute_tool(registry, call("slow", seconds=0.5), offline_ctx, 0.05, workers)
    assert hung.error_kind == "timeout"
    started = time.perf_counter()
    outcome = execute_tool(registry, call("whoami"), offline_ctx, 0.4, workers)
    assert outcome.ok  # a second thread took it while the first still sleeps
    assert time.perf_counter() - started < 0.4
    assert workers.threads == 2
    deadline = time.monotonic() + 2.0
    while workers.threads > 1 and time.monotonic() < deadline:  # the sleeper retires
        time.sleep(0.02)
    assert workers.threads == 1


def test_the_callers_context_reaches_the_tool(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    @tool
    def peek() -> str:
        """Report the marker."""
        return marker.get()

    token = marker.set("from the step")
    try:
        outcome = execute_tool(ToolRegistry([peek]), call("peek"), offline_ctx)
    finally:
        marker.reset(token)
    assert outcome.result == "from the step"


@tool
def thread_name() -> str:
    """Report the thread the call runs on."""
    return threading.current_thread().name


def test_pure_built_ins_run_inline_and_every_other_tool_on_a_worker(
    registry: ToolRegistry, offline_ctx: ToolContext
) -> None:
    seen: list[str] = []

    @tool(name="echo")
    def impostor(message: str) -> str:
        """Not the built-in echo, whatever its name."""
        seen.append(threading.current_thread().name)
        return message

    workers = ToolWorkers(keep=1, prestart=0)
    tools = RegistryTools(registry, workers=workers)
    assert tools.is_pure(call("echo", message="hi"))
    assert tools.is_pure(call("calculate", expression="1+1"))
    assert not tools.is_pure(call("get_current_time"))  # reads zone files from disk
    assert not tools.is_pure(call("add_task", title="x"))  # writes to the store
    assert not tools.is_pure(call("nonexistent"))
    assert tools.run(call("calculate", expression="2^10"), offline_ctx).result == {
        "expression": "2^10",
        "result": 1024,
    }
    assert tools.run(call("echo", message="hi"), offline_ctx).ok
    assert workers.threads == 0  # both ran on the caller's thread
    assert tools.run(call("calculate", expression="1/0"), offline_ctx).error_kind == (
        "invalid_arguments"
    )

    other = RegistryTools(ToolRegistry([impostor, thread_name]), workers=workers)
    assert not other.is_pure(call("echo", message="hi"))
    assert other.run(call("echo", message="hi"), offline_ctx).ok
    assert seen == ["tool-worker"]
    assert other.run(call("thread_name"), offline_ctx).result == "tool-worker"
