"""Test doubles of the engine's two collaborators, behind the engine's own interfaces.

`ScriptedModel` plays an LLM that answers from a script and counts its calls (it can be made
to fail, or to block until released, to stage races); `EchoTools` runs plain functions. The
store is always the real Message DB.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from messagedb_agent.engine.step import Engine, StepResult
from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import (
    LLMConfig,
    LLMError,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread
from messagedb_agent.tools.context import ToolContext, ToolOutcome

Reply = LLMResponse | LLMError | Callable[[list[Message]], LLMResponse]


def step(engine: Engine, notification: Notification) -> StepResult:
    """Exactly one step for this notification: the unit one Pub/Sub delivery runs at least."""
    return engine.advance(notification, max_steps=1)


def text(reply: str) -> LLMResponse:
    return LLMResponse(text=reply, tool_calls=(), model_name="scripted")


def calls(*pairs: tuple[str, dict[str, Any]]) -> LLMResponse:
    return LLMResponse(
        text="",
        tool_calls=tuple(
            ToolCall(id=f"c{i}", name=name, arguments=args) for i, (name, args) in enumerate(pairs)
        ),
        model_name="scripted",
    )


@dataclass
class ScriptedModel:
    """Answers each call with the next scripted reply; after the script, echoes the last user turn."""

    script: list[Reply] = field(default_factory=list)
    seen: list[list[Message]] = field(default_factory=list)
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        with self.lock:
            self.seen.append(list(messages))
            reply: Reply | None = self.script.pop(0) if self.script else None
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if reply is None:
            last_user = [m for m in messages if isinstance(m, UserTurn)][-1]
            return text(f"you said: {last_user.text}")
        if isinstance(reply, LLMError):
            raise reply
        if callable(reply) and not isinstance(reply, LLMResponse):
            return reply(messages)
        return reply

    @property
    def calls(self) -> int:
        return len(self.seen)


@dataclass
class EchoTools:
    """Tools as plain functions of (arguments, context); records every run."""

    functions: dict[str, Callable[[dict[str, Any], ToolContext], Any]] = field(default_factory=dict)
    runs: list[tuple[str, dict[str, Any], ToolContext]] = field(default_factory=list)
    pure: frozenset[str] = frozenset()  # names that may run before their claim is written

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(name, name, {"type": "object"}) for name in self.functions]

    def is_pure(self, call: ToolCall) -> bool:
        return call.name in self.pure

    def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        self.runs.append((call.name, call.arguments, ctx))
        func = self.functions.get(call.name)
        if func is None:
            return ToolOutcome(
                False, error_message=f"unknown tool {call.name}", error_kind="unknown_tool"
            )
        try:
            return ToolOutcome(True, result=func(call.arguments, ctx))
        except TimeoutError as exc:
            return ToolOutcome(False, error_message=str(exc), error_kind="timeout", retryable=True)
        except Exception as exc:
            return ToolOutcome(False, error_message=str(exc), error_kind="exception")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def new_thread(store: MessageStore, message: str = "hello", owner: str = "alice") -> Any:
    return start_thread(store, owner=owner, message=message, now=datetime(2026, 1, 1, tzinfo=UTC))


def tool_results(messages: list[Message]) -> list[ToolResult]:
    return [m for m in messages if isinstance(m, ToolResult)]
