"""Run one tool call the model asked for, and turn whatever happens into a `ToolOutcome`.

Nothing a call does escapes as an exception: an unknown tool, bad arguments, a timeout or a
crash all come back as outcomes the engine records as events and the model reads. The tool
runs on a worker thread so a hung call cannot hold the step past its timeout; the thread is
abandoned (Python cannot kill it), which is safe because tools that write are idempotent.

The worker threads are long-lived (`ToolWorkers`): starting a thread per call cost about a
third of an engine step, while handing a call to an idle thread costs a queue hand-off.
"Fast" is a promise most tools cannot keep under every fault (a locked row, a slow disk, an
MCP server that stops answering), and an inline call that hangs holds the step, its claim and
its lease with no timeout at all; so every tool runs on a worker thread, under its timeout,
except the pure ones (`PURE_TOOLS`), which run inline: they touch nothing outside the process
(no store, no network, no file), and their work is bounded by their arguments (`echo` returns
them; `calculate` bounds the expression's length, every exponent and every intermediate
result before computing it, see `arithmetic`), so they end in microseconds or fail, and the
timeout could never fire for them. Being the registry's own built-in objects, not names, a
tool registered under the same name elsewhere is not pure. `get_current_time` is not among
them: its first use of a zone reads the zone's file from disk. Pure calls may also run before
their claim is written (see `engine/step.py`).
"""

from __future__ import annotations

import contextvars
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pydantic_core import to_jsonable_python

from messagedb_agent.events.values import ToolCall
from messagedb_agent.llm.types import ToolSpec
from messagedb_agent.tools.builtin import calculate, echo
from messagedb_agent.tools.context import ToolContext, ToolOutcome
from messagedb_agent.tools.errors import ToolError
from messagedb_agent.tools.registry import Tool, ToolRegistry, declared_tool, is_user_argument

_INT64 = 2**63
# Built-in tools with no effect outside the process and bounded work (see the docstring).
PURE_TOOLS: tuple[Tool, ...] = tuple(
    declared for declared in map(declared_tool, (echo, calculate)) if declared is not None
)


def is_pure(declared: Tool | None) -> bool:
    return declared is not None and any(declared is pure for pure in PURE_TOOLS)


class ToolWorkers:
    """A cached pool of worker threads: idle threads are reused, and a call that finds none
    idle gets a new thread at once, so it never queues behind a hung call.

    A thread whose call timed out is abandoned, not lost: if its call ever returns, it goes
    back to being idle. Threads beyond `keep` idle ones retire as they finish, so a burst of
    hung calls costs threads only while they hang.
    """

    def __init__(self, keep: int = 4, *, prestart: int = 1) -> None:
        self.keep = keep
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job and not yet promised one
        self._threads = 0
        for _ in range(prestart):
            with self._lock:
                self._idle += 1
                self._start()

    def submit(self, work: Callable[[], Any], name: str = "tool") -> Future[Any]:
        """Run `work` on a worker thread; its outcome (or exception) arrives in the future."""
        future: Future[Any] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1  # an idle thread will take this job
            else:
                self._start(name)
        self._jobs.put((work, future))
        return future

    @property
    def threads(self) -> int:
        return self._threads

    def _start(self, name: str = "tool") -> None:
        """Start one more thread (the caller holds the lock)."""
        self._threads += 1
        threading.Thread(target=self._serve, name=f"{name}-worker", daemon=True).start()

    def _serve(self) -> None:
        while True:
            work, future = self._jobs.get()
            try:
                future.set_result(work())
            except BaseException as exc:  # a job's crash, even SystemExit, is its outcome
                future.set_exception(exc)
            with self._lock:
                if self._idle >= self.keep:
                    self._threads -= 1
                    return
                self._idle += 1


_workers: ToolWorkers | None = None
_workers_lock = threading.Lock()


def shared_workers() -> ToolWorkers:
    """The process's tool threads, started on first use and kept for every later call."""
    global _workers
    if _workers is None:
        with _workers_lock:
            if _workers is None:
                _workers = ToolWorkers()
    return _workers


def execute_tool(
    registry: ToolRegistry,
    call: ToolCall,
    ctx: ToolContext,
    timeout: float = 10.0,
    workers: ToolWorkers | None = None,
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

    error: BaseException | None = None
    if is_pure(declared):  # bounded and without effects: no thread, no timeout to enforce
        try:
            value = declared.run(ctx, arguments)
        except Exception as exc:  # the tool's own exception is its outcome
            error = exc
    else:
        context = contextvars.copy_context()  # the caller's log context and span, in the worker
        pool = workers or shared_workers()
        future = pool.submit(lambda: context.run(declared.run, ctx, arguments), "tool")
        try:
            error = future.exception(timeout)  # the tool's own exception is returned, not raised
        except FutureTimeout:
            return failed("timeout", f"{call.name} did not finish within {timeout:g} s.", True)
        if error is None:
            value = future.result()
    if error is None:
        return ToolOutcome(True, json_safe(value), None, None, False, _elapsed_ms(started))
    if isinstance(error, ToolError):
        return failed(error.kind, str(error) or type(error).__name__, error.retryable)
    return failed("exception", f"{call.name} failed: {type(error).__name__}: {error}")


class RegistryTools:
    """The engine's tools: a registry's specs, each call run through `execute_tool`."""

    def __init__(
        self, registry: ToolRegistry, timeout: float = 10.0, workers: ToolWorkers | None = None
    ) -> None:
        self.registry = registry
        self.timeout = timeout
        self.workers = workers or shared_workers()  # started now, not on the first call
        self._specs = registry.specs()

    def specs(self) -> list[ToolSpec]:
        return self._specs

    def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        return execute_tool(self.registry, call, ctx, self.timeout, self.workers)

    def is_pure(self, call: ToolCall) -> bool:
        return is_pure(self.registry.get(call.name))


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
