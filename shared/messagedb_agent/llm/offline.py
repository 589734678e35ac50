"""The offline stand-in: a deterministic, instant `LLMClient` for local work and tests.

It plays a model's part in the step protocol without a network: it reads the user messages
not yet answered, turns plain requests into calls of the tools it was given, and answers
from their results on the next call. Requests that name a task by its words ("mark milk
done") take two rounds: `list_tasks` first, then the change on the best-matching task.

Everything is a pure function of `(messages, tools)`. The tool call ids carry what the next
call needs to pair a result with its request: `call_{turn}_{round}_{slot}_{tool}`, where
`turn` numbers the user message, `round` the tool-calling responses of the thread, and `slot`
is the request's index in that message (or `lookup` for the shared `list_tasks`).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from messagedb_agent.events.values import TokenUsage, ToolCall
from messagedb_agent.llm import offline_replies as replies
from messagedb_agent.llm.offline_requests import (
    AddTask,
    Calculate,
    CompleteTask,
    CurrentTime,
    DeleteCompleted,
    DeleteTask,
    DescribeTask,
    Echo,
    ListTasks,
    MarkImportant,
    RenameTask,
    Request,
    TaskChange,
    TaskRef,
    parse_requests,
)
from messagedb_agent.llm.prompts import CANCELLED_NOTE, COMPACTION_PROMPT
from messagedb_agent.llm.types import (
    AssistantTurn,
    ContextSummary,
    LLMConfig,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)

OFFLINE_MODEL_NAME = "offline-stand-in"
OFFLINE_NOTE = "(Offline stand-in model: rule-based replies, no language model was called.)"
MAX_ROUNDS = 5
LOOKUP = "lookup"

_CALL_ID = re.compile(r"^call_(?P<turn>\d+)_(?P<round>\d+)_(?P<slot>\d+|lookup)_(?P<tool>.+)$")
_ACTIONS = {
    CompleteTask: "complete_task",
    DeleteTask: "delete_task",
    RenameTask: "update_task",
    DescribeTask: "update_task",
    MarkImportant: "update_task",
    DeleteCompleted: "delete_task",
}
_OneTaskChange: TypeAlias = CompleteTask | DeleteTask | RenameTask | DescribeTask | MarkImportant


class OfflineModel:
    """An `LLMClient` that never leaves the process; see the module docstring.

    With a `word_delay` it streams: each word of a reply's text goes to `config.on_text` that
    many seconds apart, as a real model's tokens would, so the local stack shows live replies.
    Without one it answers at once (tests, benchmarks), and there is nothing to stream.
    """

    def __init__(self, word_delay: float = 0.0) -> None:
        self.word_delay = word_delay

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        if config.system_prompt == COMPACTION_PROMPT:
            return summarise(messages)
        response = respond(messages, tools)
        if self.word_delay > 0 and config.on_text is not None:
            for word in _WORDS.findall(response.text):
                time.sleep(self.word_delay)
                config.on_text(word)
        return response


_WORDS = re.compile(r"\S+\s*|\s+")


_EARLIER = re.compile(r"(\d+) earlier requests")
_RECENT_REQUESTS = 5


def summarise(messages: Sequence[Message]) -> LLMResponse:
    """A compaction's summary, deterministic and bounded: how many requests the user made in
    all, and the latest few of them (each shortened), whatever the length of the thread."""
    lines = "\n".join(m.text for m in messages if isinstance(m, UserTurn)).splitlines()
    carried = sum(int(found.group(1)) for line in lines if (found := _EARLIER.search(line)))
    requests = [line.removeprefix("User: ").strip() for line in lines if line.startswith("User: ")]
    recent = "; ".join(f"“{replies.shorten(text, 80)}”" for text in requests[-_RECENT_REQUESTS:])
    text = f"The user made {carried + len(requests)} earlier requests in all"
    text += f"; the most recent: {recent}." if recent else "."
    return _answer(messages, text, first_answer=False)


@dataclass(frozen=True, slots=True)
class _Observed:
    """A call made for a request earlier in this turn, with its result once it arrived."""

    call: ToolCall
    result: ToolResult | None


@dataclass(frozen=True, slots=True)
class _Pending:
    turn: int
    slot: int
    request: Request


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Calls:
    """Several calls of one tool for one request, such as deleting every completed task."""

    name: str
    task_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Done:
    line: str


class _NeedsLookup:
    """The request names a task by its words: the task list must be read first."""


class _Waits:
    """A listing waits until this turn's changes are made, so it shows them."""


_Step = _Call | _Calls | _Done | _NeedsLookup | _Waits


@dataclass
class _Turn:
    """What the unanswered part of the conversation holds, read once per call."""

    requests: list[_Pending] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    observed: dict[tuple[int, str], list[_Observed]] = field(default_factory=dict)
    foreign: list[ToolResult] = field(default_factory=list)
    rounds: int = 0
    lookup_turn: int = 0
    recent: int | None = None

    def observations(self, pending: _Pending) -> list[_Observed]:
        return self.observed.get((pending.turn, str(pending.slot)), [])

    def lookup(self) -> _Observed | None:
        found = [
            obs for (_, slot), items in self.observed.items() if slot == LOOKUP for obs in items
        ]
        return found[-1] if found else None


def respond(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> LLMResponse:
    """The whole decision: the next tool calls, or the answer once there is nothing to call."""
    available = {tool.name: tool for tool in tools}
    explicit = _explicit_call(messages, available)
    if explicit is not None:
        return explicit
    turn = _read_turn(messages)
    round_number = sum(1 for m in messages if isinstance(m, AssistantTurn) and m.tool_calls)
    first_answer = not any(
        (isinstance(m, AssistantTurn) and not m.tool_calls) or isinstance(m, ContextSummary)
        for m in messages
    )
    if turn.foreign:
        return _answer(messages, replies.foreign_summary(turn.foreign), first_answer)
    if not turn.requests:
        if turn.not_understood:
            again = _helped(messages, turn.not_understood)
            return _answer(messages, replies.help_text(available, again=again), first_answer)
        return _answer(messages, "Is there anything else I can do for you?", first_answer)
    steps = _plan(turn, available, final=turn.rounds >= MAX_ROUNDS)
    calls = _tool_calls(turn, steps, available, round_number)
    if calls:
        return _calling(messages, calls)
    lines = [step.line for step in steps.values() if isinstance(step, _Done)]
    lines.extend(
        f"I didn't understand “{replies.shorten(text)}”; say “help” to see what I can do."
        for text in turn.not_understood
    )
    return _answer(messages, "\n".join(lines), first_answer)


# -- `/call NAME key=value ...`: any registered tool, by name ------------------------------

CALL_COMMAND = "/call"
CALL_USAGE = "Write it as /call TOOL key=value ..., e.g. /call echo message=hello."
_EXPLICIT_ID = "explicit_{turn}_{tool}"


def parse_call(text: str) -> tuple[str, dict[str, Any]] | str:
    """A `/call` message's tool name and arguments, or a sentence saying what is wrong.

    Words are split as a shell would (quotes keep spaces); each `key=value` value is JSON when
    it parses as JSON (`3`, `true`, `[1, 2]`, `"7"`) and the text itself otherwise.
    """
    try:
        words = shlex.split(text.strip()[len(CALL_COMMAND) :])
    except ValueError as exc:
        return f"I couldn't read that call ({exc}). {CALL_USAGE}"
    if not words:
        return f"Which tool should I call? {CALL_USAGE}"
    name, arguments = words[0], {}
    for word in words[1:]:
        key, equals, value = word.partition("=")
        if not equals or not key:
            return f"“{word}” is not a key=value argument. {CALL_USAGE}"
        try:
            arguments[key] = json.loads(value)
        except ValueError:
            arguments[key] = value
    return name, arguments


def _is_call(text: str) -> bool:
    stripped = text.strip()
    return stripped == CALL_COMMAND or stripped.startswith(CALL_COMMAND + " ")


def _explicit_call(
    messages: Sequence[Message], available: dict[str, ToolSpec]
) -> LLMResponse | None:
    """The call a `/call` message asks for, then its result; None for any other message.

    Checked before the plain-language reading, so that a tool the stand-in has no phrase for
    (one a deployer added) can still be exercised offline, deterministically. It applies when
    the latest user message of the unanswered part is a `/call`.
    """
    start, turn, latest = 0, 0, None
    for index, message in enumerate(messages):
        if _ends_turn(message):
            start = index + 1
        if isinstance(message, UserTurn | ContextSummary):
            turn += 1
            latest = index
    if latest is None or latest < start:
        return None
    user = messages[latest]
    if not isinstance(user, UserTurn) or not _is_call(user.text):
        return None
    first_answer = not any(
        (isinstance(m, AssistantTurn) and not m.tool_calls) or isinstance(m, ContextSummary)
        for m in messages
    )
    parsed = parse_call(user.text)
    if isinstance(parsed, str):
        return _answer(messages, parsed, first_answer)
    name, arguments = parsed
    if name not in available:
        names = ", ".join(sorted(available)) or "none"
        return _answer(
            messages, f"There is no tool named “{name}” here. Tools: {names}.", first_answer
        )
    call_id = _EXPLICIT_ID.format(turn=turn, tool=name)
    after = messages[latest + 1 :]
    if not any(isinstance(m, AssistantTurn) and m.tool_calls for m in after):
        return _calling(messages, [ToolCall(id=call_id, name=name, arguments=arguments)])
    result = next(
        (m for m in after if isinstance(m, ToolResult) and m.tool_call_id == call_id), None
    )
    error = replies.error_of(result)
    if error is not None:
        return _answer(messages, f"{name} failed: {error}", first_answer)
    assert result is not None
    shown = json.dumps(result.content, ensure_ascii=False, sort_keys=True, default=str)
    return _answer(messages, f"{name} returned {shown}", first_answer)


def _helped(messages: Sequence[Message], asked: list[str]) -> bool:
    """Whether the full help was shown earlier in the thread and the user did not ask for it."""
    if any(text.strip(" ?!.").lower() == "help" for text in asked):
        return False
    return any(
        isinstance(m, AssistantTurn) and not m.tool_calls and replies.HELP_START in m.text
        for m in messages
    )


def _recent_task(messages: Sequence[Message]) -> int | None:
    """The id of the task the latest task result was about: what "it" means in "mark it done"."""
    for message in reversed(messages):
        if isinstance(message, ToolResult) and isinstance(message.content, dict):
            task = message.content.get("task")
            if isinstance(task, dict) and isinstance(task.get("id"), int):
                return int(task["id"])
    return None


def _ends_turn(message: Message) -> bool:
    """A final answer, or the note that the user cancelled the turn: what comes after it is a
    new turn."""
    if isinstance(message, AssistantTurn):
        return not message.tool_calls
    return isinstance(message, UserTurn) and message.text == CANCELLED_NOTE


def _read_turn(messages: Sequence[Message]) -> _Turn:
    """The requests of every user message after the last final answer, and what was done."""
    start = 0
    for index, message in enumerate(messages):
        if _ends_turn(message):
            start = index + 1
    turn = _Turn()
    turn.recent = _recent_task(messages)
    user_number = sum(1 for m in messages[:start] if isinstance(m, UserTurn))
    results = {m.tool_call_id: m for m in messages[start:] if isinstance(m, ToolResult)}
    for message in messages[start:]:
        if isinstance(message, ContextSummary):
            user_number += 1  # numbered like any user turn, but it asks for nothing
        elif isinstance(message, UserTurn):
            user_number += 1
            requests = parse_requests(message.text)
            turn.requests.extend(_Pending(user_number, i, r) for i, r in enumerate(requests))
            if not requests:
                turn.not_understood.append(message.text.strip())
            turn.lookup_turn = user_number
        elif isinstance(message, AssistantTurn):
            turn.rounds += 1
            for call in message.tool_calls:
                parsed = _CALL_ID.match(call.id)
                if parsed is None:
                    if call.id in results:
                        turn.foreign.append(results[call.id])
                    continue
                key = (int(parsed["turn"]), parsed["slot"])
                turn.observed.setdefault(key, []).append(_Observed(call, results.get(call.id)))
    return turn


def _plan(turn: _Turn, available: dict[str, ToolSpec], *, final: bool) -> dict[_Pending, _Step]:
    """Each request's next step; listings go last so that they show this turn's changes."""
    steps: dict[_Pending, _Step] = {}
    for pending in turn.requests:
        if not isinstance(pending.request, ListTasks):
            steps[pending] = _advance(pending, turn, available)
    changing = any(
        isinstance(step, _Call | _Calls | _NeedsLookup) and isinstance(p.request, TaskChange)
        for p, step in steps.items()
    )
    for pending in turn.requests:
        if isinstance(pending.request, ListTasks):
            step = _advance(pending, turn, available)
            steps[pending] = _Waits() if changing and isinstance(step, _Call) else step
    ordered = {pending: steps[pending] for pending in turn.requests}
    if final:
        return {
            p: s if isinstance(s, _Done) else _Done(replies.gave_up(p.request))
            for p, s in ordered.items()
        }
    return ordered


def _advance(pending: _Pending, turn: _Turn, available: dict[str, ToolSpec]) -> _Step:
    request = pending.request
    tool = _tool_for(request)
    if tool not in available:
        return _Done(f"I can't {replies.verb(request)} here: that isn't available in this setup.")
    observed = [obs for obs in turn.observations(pending) if obs.call.name == tool]
    if isinstance(request, DeleteCompleted):
        return _clear_completed(observed, turn, available)
    if observed:
        return _Done(replies.describe(request, observed[-1].call, observed[-1].result))
    if isinstance(request, _OneTaskChange):
        if request.ref.recent:
            return _recent_step(pending, request, turn, available)
        return _find_task(request, turn, available)
    return _Call(tool, _arguments(request, None, available[tool]))


def _recent_step(
    pending: _Pending,
    request: _OneTaskChange,
    turn: _Turn,
    available: dict[str, ToolSpec],
) -> _Step:
    """ "It" is the task an earlier request of this message adds (once added), or else the
    task the conversation dealt with last."""
    for earlier in turn.requests:
        if earlier.turn == pending.turn and earlier.slot >= pending.slot:
            break
        if isinstance(earlier.request, AddTask) and not any(
            obs.result is not None for obs in turn.observations(earlier)
        ):
            return _Waits()
    if turn.recent is None:
        return _Done(f"I'm not sure which task “{request.ref.text}” means; tell me its name.")
    tool = _ACTIONS[type(request)]
    return _Call(tool, _arguments(request, turn.recent, available[tool]))


def _clear_completed(
    observed: list[_Observed], turn: _Turn, available: dict[str, ToolSpec]
) -> _Step:
    """Delete every completed task: read the list, then one deletion per completed task."""
    if observed:
        return _Done(replies.cleared([(obs.call, obs.result) for obs in observed]))
    if "list_tasks" not in available:
        return _Done("I can't see which tasks are completed here; delete them one by number.")
    lookup = turn.lookup()
    if lookup is None:
        return _NeedsLookup()
    if replies.error_of(lookup.result) is not None:
        return _Done(f"I couldn't read your tasks: {replies.trouble(lookup.result)}")
    done = tuple(int(t["id"]) for t in replies.tasks_in(lookup.result) if t.get("completed"))
    if not done:
        return _Done("You have no completed tasks to delete.")
    return _Calls("delete_task", done)


def _find_task(
    request: _OneTaskChange,
    turn: _Turn,
    available: dict[str, ToolSpec],
) -> _Step:
    tool = _ACTIONS[type(request)]
    if request.ref.task_id is not None:
        return _Call(tool, _arguments(request, request.ref.task_id, available[tool]))
    if "list_tasks" not in available:
        return _Done(
            f"I can't look up “{replies.shorten(request.ref.text)}” by name here; "
            "tell me the task number instead (e.g. “task 3”)."
        )
    lookup = turn.lookup()
    if lookup is None:
        return _NeedsLookup()
    if replies.error_of(lookup.result) is not None:
        text = replies.shorten(request.ref.text)
        return _Done(
            f"I couldn't read your tasks to find “{text}”: {replies.trouble(lookup.result)}"
        )
    tasks = replies.tasks_in(lookup.result)
    task = best_match(request.ref, tasks, prefer_pending=isinstance(request, CompleteTask))
    if task is None:
        titles = ", ".join(f"“{t.get('title')}”" for t in tasks) or "none yet"
        text = replies.shorten(request.ref.text)
        return _Done(f"I couldn't find a task matching “{text}”. Your tasks: {titles}.")
    return _Call(tool, _arguments(request, int(task["id"]), available[tool]))


def best_match(
    ref: TaskRef, tasks: Sequence[dict[str, Any]], *, prefer_pending: bool = False
) -> dict[str, Any] | None:
    """The task whose title fits `ref` best: exact title, then most of its words, then lowest id."""
    if ref.task_id is not None:
        return next((t for t in tasks if t.get("id") == ref.task_id), None)
    wanted = _words(ref.text)
    if not wanted:
        return None
    scored: list[tuple[tuple[int, float, int, int], dict[str, Any]]] = []
    for task in tasks:
        title = _words(str(task.get("title", "")))
        shared = len(wanted & title)
        if not shared:
            continue
        exact = int(title == wanted)
        cover = shared / len(wanted) + shared / max(len(title), 1)
        pending = int(prefer_pending and not task.get("completed"))
        scored.append(((exact, cover, pending, -int(task.get("id", 0))), task))
    if not scored:
        return None
    return max(scored, key=lambda item: item[0])[1]


def _tool_calls(
    turn: _Turn, steps: dict[_Pending, _Step], available: dict[str, ToolSpec], round_number: int
) -> list[ToolCall]:
    calls: list[ToolCall] = []
    if any(isinstance(step, _NeedsLookup) for step in steps.values()):
        spec = available["list_tasks"]
        call_id = f"call_{turn.lookup_turn}_{round_number}_{LOOKUP}_list_tasks"
        calls.append(
            ToolCall(id=call_id, name="list_tasks", arguments=_only(spec, {"status": "all"}))
        )
    for pending, step in steps.items():
        if isinstance(step, _Call):
            call_id = f"call_{pending.turn}_{round_number}_{pending.slot}_{step.name}"
            calls.append(ToolCall(id=call_id, name=step.name, arguments=step.arguments))
        elif isinstance(step, _Calls):
            prefix = f"call_{pending.turn}_{round_number}_{pending.slot}_{step.name}"
            calls.extend(
                ToolCall(id=f"{prefix}_{task_id}", name=step.name, arguments={"task_id": task_id})
                for task_id in step.task_ids
            )
    return calls


def _tool_for(request: Request) -> str:
    match request:
        case AddTask():
            return "add_task"
        case ListTasks():
            return "list_tasks"
        case (
            CompleteTask() | DeleteTask() | RenameTask() | DescribeTask() | MarkImportant()
        ) | DeleteCompleted():
            return _ACTIONS[type(request)]
        case CurrentTime():
            return "get_current_time"
        case Calculate():
            return "calculate"
        case Echo():
            return "echo"


def _arguments(request: Request, task_id: int | None, spec: ToolSpec) -> dict[str, Any]:
    match request:
        case AddTask(title=title, description=description):
            return _only(spec, {"title": title, "description": description})
        case ListTasks(status=status):
            return _only(spec, {"status": status})
        case RenameTask(new_title=new_title):
            return {"task_id": task_id, "title": new_title}
        case DescribeTask(description=description):
            return {"task_id": task_id, "description": description}
        case MarkImportant(important=important):
            return {"task_id": task_id, "important": important}
        case CompleteTask() | DeleteTask() | DeleteCompleted():
            return {"task_id": task_id}
        case CurrentTime(timezone=timezone):
            return _only(spec, {"timezone": timezone})
        case Calculate(expression=expression):
            return {"expression": expression}
        case Echo(message=message):
            return {"message": message}


def _only(spec: ToolSpec, optional: dict[str, Any]) -> dict[str, Any]:
    """Optional arguments the tool's schema declares (all, if it declares none), minus unset ones."""
    declared = spec.parameters.get("properties")
    return {
        key: value
        for key, value in optional.items()
        if value is not None and (not isinstance(declared, dict) or key in declared)
    }


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def _calling(messages: Sequence[Message], calls: list[ToolCall]) -> LLMResponse:
    return LLMResponse(
        text="",
        tool_calls=tuple(calls),
        model_name=OFFLINE_MODEL_NAME,
        token_usage=_usage(messages, "", calls),
        finish_reason="tool_calls",
    )


def _answer(messages: Sequence[Message], text: str, first_answer: bool) -> LLMResponse:
    if first_answer:
        text = f"{OFFLINE_NOTE}\n{text}"
    return LLMResponse(
        text=text,
        tool_calls=(),
        model_name=OFFLINE_MODEL_NAME,
        token_usage=_usage(messages, text, []),
        finish_reason="stop",
    )


def _usage(messages: Sequence[Message], text: str, calls: list[ToolCall]) -> TokenUsage:
    """An estimate in words: enough for the session's token counters to move plausibly."""
    output = _count(text) + sum(_count(json.dumps(c.arguments, sort_keys=True)) for c in calls)
    return TokenUsage(
        input_tokens=sum(_count(part) for m in messages for part in _texts(m)), output_tokens=output
    )


def _texts(message: Message) -> Iterator[str]:
    if isinstance(message, UserTurn):
        yield message.text
    elif isinstance(message, AssistantTurn):
        yield message.text
        for call in message.tool_calls:
            yield json.dumps(call.arguments, sort_keys=True, default=str)
    else:
        yield json.dumps(message.content, sort_keys=True, default=str)


def _count(text: str) -> int:
    return len(text.split())
