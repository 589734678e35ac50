"""What the model sees: the conversation projected from a thread's events.

An assistant response is placed right after the context it was generated from (its claim's
`context_position`), with its tool results right behind it. A user message that arrived while
that call was in flight therefore comes *after* the response, so the next call answers it
instead of treating it as already seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import singledispatch
from typing import Any

from messagedb_agent.events.agent import LLMCallFailed, LLMCallRequested, LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.events.system import SessionStarted
from messagedb_agent.events.tool import ToolExecutionCompleted, ToolExecutionFailed
from messagedb_agent.events.user import UserMessageAdded
from messagedb_agent.llm.types import AssistantTurn, Message, ToolResult, UserTurn
from messagedb_agent.projections.anchors import Anchors

SortKey = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LLMContext:
    system_prompt: str | None
    messages: tuple[Message, ...]


class _Acc:
    """Mutable only while one projection runs; callers get an immutable LLMContext."""

    def __init__(self) -> None:
        self.system_prompt: str | None = None
        self.entries: list[tuple[SortKey, Message]] = []
        self.anchors = Anchors()
        self.responses: dict[str, SortKey] = {}
        self.call_order: dict[tuple[str, str], int] = {}


@singledispatch
def _apply(event: Event, recorded: Recorded[Event], acc: _Acc) -> None:
    """Events that do not shape the conversation change nothing."""


@_apply.register
def _(event: SessionStarted, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.system_prompt = event.system_prompt


@_apply.register
def _(event: UserMessageAdded, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.entries.append(((recorded.position, 0), UserTurn(event.message)))


@_apply.register
def _(event: LLMCallRequested, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.anchors.claimed(event, recorded.position)


@_apply.register
def _(event: LLMCallFailed, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.anchors.failed(event)


@_apply.register
def _(event: LLMResponseReceived, recorded: Recorded[Event], acc: _Acc) -> None:
    anchor = acc.anchors.answered_through(event, recorded)
    key = (anchor, 1, recorded.position)
    tools_step = tool_step_id(event.step_id)
    acc.responses[tools_step] = key
    for index, call in enumerate(event.tool_calls):
        acc.call_order[(tools_step, call.id)] = index
    acc.entries.append(
        (key, AssistantTurn(event.response_text, event.tool_calls, event.thought_signatures))
    )


def _result_key(acc: _Acc, step_id: str, call_id: str, position: int) -> SortKey:
    response = acc.responses.get(step_id)
    if response is None:
        return (position, 0)  # no response to follow: it stands where it was written
    return (*response, 1, acc.call_order.get((step_id, call_id), 0))


@_apply.register
def _(event: ToolExecutionCompleted, recorded: Recorded[Event], acc: _Acc) -> None:
    key = _result_key(acc, event.step_id, event.tool_call_id, recorded.position)
    acc.entries.append((key, ToolResult(event.tool_call_id, event.tool_name, event.result)))


@_apply.register
def _(event: ToolExecutionFailed, recorded: Recorded[Event], acc: _Acc) -> None:
    if event.retryable:
        return  # the call will be tried again; only its final outcome belongs in the context
    key = _result_key(acc, event.step_id, event.tool_call_id, recorded.position)
    content: Any = {"error": event.error_message, "kind": event.error_kind}
    acc.entries.append((key, ToolResult(event.tool_call_id, event.tool_name, content, True)))


class LLMContextFold:
    """The same projection, folded incrementally (see `NextStepFold`)."""

    __slots__ = ("_acc",)

    def __init__(self) -> None:
        self._acc = _Acc()

    def feed(self, events: Sequence[Recorded[Event]]) -> LLMContextFold:
        acc = self._acc
        for recorded in events:
            _apply(recorded.event, recorded, acc)
        return self

    @property
    def size(self) -> int:
        return len(self._acc.entries)

    def context(self) -> LLMContext:
        acc = self._acc
        acc.entries.sort(key=_sort_key)  # nearly sorted already: linear for timsort
        return LLMContext(acc.system_prompt, tuple(message for _, message in acc.entries))


def _sort_key(entry: tuple[SortKey, Message]) -> SortKey:
    return entry[0]


def project_llm_context(events: Sequence[Recorded[Event]]) -> LLMContext:
    return LLMContextFold().feed(events).context()
