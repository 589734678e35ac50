"""What the model sees: the conversation projected from a thread's events.

An assistant response is placed right after the context it was generated from (its claim's
`context_position`), with its tool results right behind it. A user message that arrived while
that call was in flight therefore comes *after* the response, so the next call answers it
instead of treating it as already seen.

The context stays bounded however long the thread: a `ContextCompacted` event replaces every
message that sorts before the user message it keeps with its summary, and a tool result longer
than the cap is shown cut, with a note (the event keeps all of it). Sizes are estimated at
four characters a token, the rule of thumb both providers document for English text; it
decides when to compact, not what is billed.
"""

from __future__ import annotations

import json
from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass
from functools import singledispatch
from operator import itemgetter
from typing import Any

import orjson

from messagedb_agent.events.agent import (
    ContextCompacted,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
)
from messagedb_agent.events.approval import ToolApprovalDenied
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.events.system import SessionStarted
from messagedb_agent.events.tool import (
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionInDoubt,
)
from messagedb_agent.events.user import TurnCancelled, UserMessageAdded
from messagedb_agent.llm.prompts import CANCELLED_NOTE, SUMMARY_PREFIX
from messagedb_agent.llm.types import (
    AssistantTurn,
    ContextSummary,
    Message,
    ToolResult,
    UserTurn,
)
from messagedb_agent.projections.anchors import Anchors

SortKey = tuple[int, ...]
CHARS_PER_TOKEN = 4
DEFAULT_TOOL_RESULT_MAX_CHARS = 20_000
# What a compaction keeps verbatim: the most recent turns, up to this share of the budget.
KEEP_SHARE = 0.4
_MESSAGE_OVERHEAD = 4  # role and framing tokens a message costs beyond its text


@dataclass(frozen=True, slots=True)
class LLMContext:
    system_prompt: str | None
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """What a compaction summarises: every message before the user message it keeps."""

    first_kept_position: int
    summarised: tuple[Message, ...]
    tokens_before: int
    kept_tokens: int

    def request(self) -> list[Message]:
        """The summarised messages as one transcript to summarise: plain text, so no
        provider's pairing rules for calls and results apply to it."""
        lines = [_transcript_line(message) for message in self.summarised]
        return [UserTurn("Summarise this conversation:\n\n" + "\n".join(lines))]


Entry = tuple[SortKey, Message, int]  # sort key, message, estimated tokens


class _Acc:
    """Mutable only while one projection runs; callers get an immutable LLMContext.

    `entries` is kept in sort-key order as they arrive: nearly every one sorts last, so an
    insert is an append, and building the context is a copy, not a sort of the thread."""

    def __init__(self, tool_result_max_chars: int) -> None:
        self.system_prompt: str | None = None
        self.entries: list[Entry] = []
        self.tokens = 0
        self.floor: SortKey | None = None  # what sorts below it is summarised
        self.reordered = 0  # entries inserted before the last one, or replaced
        # for cancellations: model steps claimed and not answered, calls without an outcome
        # (tool step, call id -> tool), and what a cancellation closed
        self.claimed: set[str] = set()
        self.open_calls: dict[tuple[str, str], str] = {}
        self.cancelled: set[str] = set()
        self.closed: set[tuple[str, str]] = set()
        self.turn_start: SortKey | None = None  # the running turn's first message
        self.anchors = Anchors()
        self.responses: dict[str, SortKey] = {}
        self.call_order: dict[tuple[str, str], int] = {}
        self.tool_result_max_chars = tool_result_max_chars

    def add(self, key: SortKey, message: Message) -> None:
        if self.floor is not None and key < self.floor:
            return  # a late outcome of something already summarised
        tokens = estimate_tokens(message)
        entries = self.entries
        if not entries or entries[-1][0] <= key:
            entries.append((key, message, tokens))
        else:  # a response placed before a message that arrived while it was generated
            insort(entries, (key, message, tokens), key=_sort_key)
            self.reordered += 1
        self.tokens += tokens


@singledispatch
def _apply(event: Event, recorded: Recorded[Event], acc: _Acc) -> None:
    """Events that do not shape the conversation change nothing."""


@_apply.register
def _(event: SessionStarted, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.system_prompt = event.system_prompt


@_apply.register
def _(event: UserMessageAdded, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.add((recorded.position, 0), UserTurn(event.message))
    if acc.turn_start is None:
        acc.turn_start = (recorded.position, 0)


@_apply.register
def _(event: LLMCallRequested, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.anchors.claimed(event, recorded.position)
    if event.step_id not in acc.cancelled:
        acc.claimed.add(event.step_id)


@_apply.register
def _(event: LLMCallFailed, recorded: Recorded[Event], acc: _Acc) -> None:
    acc.anchors.failed(event)


@_apply.register
def _(event: LLMResponseReceived, recorded: Recorded[Event], acc: _Acc) -> None:
    anchor = acc.anchors.answered_through(event, recorded)
    acc.claimed.discard(event.step_id)
    if event.step_id in acc.cancelled:
        return  # a cancelled turn's late answer: in the log and the transcript, not here
    key = (anchor, 1, recorded.position)
    if not event.tool_calls:
        acc.turn_start = None  # answered: the next message starts a turn
    tools_step = tool_step_id(event.step_id)
    acc.responses[tools_step] = key
    for index, call in enumerate(event.tool_calls):
        acc.call_order[(tools_step, call.id)] = index
        acc.open_calls[(tools_step, call.id)] = call.name
    acc.add(key, AssistantTurn(event.response_text, event.tool_calls, event.thought_signatures))


def _result_key(acc: _Acc, step_id: str, call_id: str, position: int) -> SortKey:
    response = acc.responses.get(step_id)
    if response is None:
        return (position, 0)  # no response to follow: it stands where it was written
    return (*response, 1, acc.call_order.get((step_id, call_id), 0))


def _closed(acc: _Acc, step_id: str, call_id: str) -> bool:
    """Whether the call's outcome is already in the context (a cancellation closed it);
    otherwise it is now."""
    if (step_id, call_id) in acc.closed:
        return True
    acc.open_calls.pop((step_id, call_id), None)
    return False


@_apply.register
def _(event: ToolExecutionCompleted, recorded: Recorded[Event], acc: _Acc) -> None:
    if _closed(acc, event.step_id, event.tool_call_id):
        return
    key = _result_key(acc, event.step_id, event.tool_call_id, recorded.position)
    content = _capped(event.result, acc.tool_result_max_chars)
    acc.add(key, ToolResult(event.tool_call_id, event.tool_name, content))


@_apply.register
def _(event: ToolExecutionFailed, recorded: Recorded[Event], acc: _Acc) -> None:
    if event.retryable:
        return  # the call will be tried again; only its final outcome belongs in the context
    if _closed(acc, event.step_id, event.tool_call_id):
        return
    key = _result_key(acc, event.step_id, event.tool_call_id, recorded.position)
    content: Any = {"error": event.error_message, "kind": event.error_kind}
    acc.add(key, ToolResult(event.tool_call_id, event.tool_name, content, True))


@_apply.register
def _(event: ToolApprovalDenied, recorded: Recorded[Event], acc: _Acc) -> None:
    """A call its owner declined (or nobody approved in time) reads as a result that says so,
    so the model answers knowing it did not happen. A rerun declined leaves the call in
    doubt, and it reads so."""
    if _closed(acc, event.step_id, event.tool_call_id):
        return
    key = _result_key(acc, event.step_id, event.tool_call_id, recorded.position)
    content = (
        {"declined": declined_text(event)}
        if event.retry_of is None
        else {"in_doubt": IN_DOUBT, "not_run_again": declined_text(event)}
    )
    acc.add(key, ToolResult(event.tool_call_id, event.tool_name, content, True))


@_apply.register
def _(event: ToolExecutionInDoubt, recorded: Recorded[Event], acc: _Acc) -> None:
    """Final, unless its owner was asked whether to rerun it: then the call stays open until
    the answer, and the rerun's outcome, or the refusal, is its result."""
    if event.retry_on_approval or _closed(acc, event.step_id, event.tool_call_id):
        return
    key = _result_key(acc, event.step_id, event.tool_call_id, recorded.position)
    acc.add(key, ToolResult(event.tool_call_id, event.tool_name, {"in_doubt": IN_DOUBT}, True))


IN_DOUBT = (
    "unknown outcome: the call started but its worker stopped before recording what happened, "
    "so it may or may not have taken effect; it will not be run again. Do not assume it "
    "happened or that it did not; tell the user."
)


@_apply.register
def _(event: TurnCancelled, recorded: Recorded[Event], acc: _Acc) -> None:
    """The cancelled turn stays in the context, marked: each call it left without an outcome
    reads as cancelled (so every call keeps its result, as providers require), and a note says
    the user stopped the request. A model step still in flight is dropped: its late answer
    would be a reply to a request the user withdrew. A rollback takes the whole turn out
    instead, from its first message on (the log and the transcript keep it)."""
    acc.cancelled |= acc.claimed
    acc.claimed.clear()
    start, acc.turn_start = acc.turn_start, None
    if event.rollback:  # the turn leaves the context whole: its messages, calls and results
        acc.closed |= set(acc.open_calls)
        acc.open_calls.clear()
        if start is not None:
            acc.entries = [entry for entry in acc.entries if entry[0] < start]
            acc.tokens = sum(entry[2] for entry in acc.entries)
            acc.reordered += 1
        return
    for (step_id, call_id), name in list(acc.open_calls.items()):
        key = _result_key(acc, step_id, call_id, recorded.position)
        acc.add(key, ToolResult(call_id, name, {"cancelled": CANCELLED_CALL}, True))
        acc.closed.add((step_id, call_id))
    acc.open_calls.clear()
    acc.add((recorded.position, 0), UserTurn(CANCELLED_NOTE))


CANCELLED_CALL = "the user cancelled the request before this call ran"


def declined_text(event: ToolApprovalDenied) -> str:
    if event.expired:
        return "nobody approved this call in time, so it was not run"
    if event.reason:
        return f"the user declined: {event.reason}"
    return "the user declined, so it was not run"


@_apply.register
def _(event: ContextCompacted, recorded: Recorded[Event], acc: _Acc) -> None:
    floor: SortKey = (event.first_kept_position, 0)
    kept = [entry for entry in acc.entries if entry[0] >= floor]
    summary = ContextSummary(SUMMARY_PREFIX + event.summary)
    acc.entries = [((event.first_kept_position, -1), summary, estimate_tokens(summary)), *kept]
    acc.tokens = sum(entry[2] for entry in acc.entries)
    acc.floor = floor
    acc.reordered += 1


class LLMContextFold:
    """The same projection, folded incrementally (see `NextStepFold`). The messages of the
    last context built are kept, so the next one copies them and adds what was appended."""

    __slots__ = ("_acc", "_messages", "_mirrored")

    def __init__(self, tool_result_max_chars: int = DEFAULT_TOOL_RESULT_MAX_CHARS) -> None:
        self._acc = _Acc(tool_result_max_chars)
        self._messages: list[Message] = []
        self._mirrored: tuple[_Acc | None, int, int] = (None, 0, 0)  # acc, entries, reordered

    def feed(self, events: Sequence[Recorded[Event]]) -> LLMContextFold:
        acc = self._acc
        for recorded in events:
            _apply(recorded.event, recorded, acc)
        return self

    @property
    def size(self) -> int:
        return len(self._acc.entries)

    @property
    def tokens(self) -> int:
        """The estimated tokens of the context a call would be given now."""
        prompt = self._acc.system_prompt
        return self._acc.tokens + (_estimate(prompt) if prompt else 0)

    def context(self) -> LLMContext:
        acc = self._acc
        source, count, reordered = self._mirrored
        if source is acc and reordered == acc.reordered and count <= len(acc.entries):
            self._messages.extend(map(_message_of, acc.entries[count:]))
        else:
            self._messages = list(map(_message_of, acc.entries))
        self._mirrored = (acc, len(acc.entries), acc.reordered)
        return LLMContext(acc.system_prompt, tuple(self._messages))

    def compaction(self, budget: int) -> CompactionPlan | None:
        """What to summarise once the context is over `budget` tokens, or None.

        The cut is at a user message, so a tool call is never parted from its result: the
        earliest one after which the rest fits in `KEEP_SHARE` of the budget, else the latest.
        None when under budget, or when nothing but the current summary lies before the cut.
        """
        total = self.tokens
        if total <= budget:
            return None
        acc = self._acc
        keep, suffix, cut = budget * KEEP_SHARE, 0, None
        for index in range(len(acc.entries) - 1, -1, -1):
            key, message, tokens = acc.entries[index]
            suffix += tokens
            if isinstance(message, UserTurn) and not isinstance(message, ContextSummary):
                if cut is None or suffix <= keep:
                    cut = (index, key[0], suffix)
                if suffix > keep:
                    break
        if cut is None:
            return None
        index, position, kept = cut
        before = [entry[1] for entry in acc.entries[:index]]
        if not any(not isinstance(message, ContextSummary) for message in before):
            return None
        return CompactionPlan(position, tuple(before), total, kept)


def _sort_key(entry: Entry) -> SortKey:
    return entry[0]


_message_of = itemgetter(1)


def project_llm_context(
    events: Sequence[Recorded[Event]], tool_result_max_chars: int = DEFAULT_TOOL_RESULT_MAX_CHARS
) -> LLMContext:
    return LLMContextFold(tool_result_max_chars).feed(events).context()


# -- sizes ------------------------------------------------------------------------------------


def estimate_tokens(message: Message) -> int:
    if isinstance(message, UserTurn):
        return _estimate(message.text) + _MESSAGE_OVERHEAD
    if isinstance(message, AssistantTurn):
        calls = sum(_estimate(_json(call.arguments)) + 8 for call in message.tool_calls)
        return _estimate(message.text) + calls + _MESSAGE_OVERHEAD
    return _estimate(_json(message.content)) + _MESSAGE_OVERHEAD


def _estimate(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def _json(value: Any) -> str:
    """Compact JSON, as the providers are sent it (orjson: a fold sizes every tool call and
    result, and the standard library's encoder would be most of the fold's time)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits, which JSON allows and orjson refuses
        return json.dumps(value, default=str, separators=(",", ":"))


def _capped(result: Any, limit: int) -> Any:
    """A result the model may see: whole, or its first `limit` characters and a note."""
    text = _json(result)
    if len(text) <= limit:
        return result
    return {
        "truncated": True,
        "note": f"This result was {len(text)} characters long; only the first {limit} are "
        "shown. Ask for less (a filter, a page) if you need the rest.",
        "partial": text[:limit],
    }


def _transcript_line(message: Message) -> str:
    if isinstance(message, ContextSummary):
        return message.text
    if isinstance(message, UserTurn):
        return f"User: {message.text}"
    if isinstance(message, AssistantTurn):
        calls = "; ".join(f"{c.name}({_json(c.arguments)})" for c in message.tool_calls)
        said = f"Assistant: {message.text}" if message.text else "Assistant:"
        return f"{said} [called {calls}]" if calls else said
    outcome = "failed" if message.is_error else "returned"
    return f"Tool {message.name} {outcome}: {_json(message.content)[:500]}"
