"""Hypothesis strategies for thread histories: scripts of writes, replayed into events.

A script is a list of actions that refer to steps and claims by index rather than by id or
position, so the same script can be replayed with events of unknown types slipped in between
and still mean the same thing. Indexes wrap around; an action that refers to a step that does
not exist yet creates one, so every script replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.events import Event, Recorded, ToolCall
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.events.system import CompletionReason

Action = tuple[Any, ...]

_REASONS: tuple[CompletionReason, ...] = (
    "success",
    "failure",
    "timeout",
    "terminated",
    "max_iterations",
)

_index = st.integers(min_value=0, max_value=5)
_attempt = st.integers(min_value=1, max_value=4)
_seconds = st.integers(min_value=0, max_value=300)
_text = st.text(alphabet="abc xyz", max_size=6)

_protocol: st.SearchStrategy[Action] = st.one_of(
    st.tuples(st.just("user"), _text),
    st.tuples(st.just("claim"), st.booleans(), _index, _attempt, _seconds),
    st.tuples(
        st.just("respond"),
        _index,
        _text,
        st.integers(min_value=0, max_value=3),
        st.one_of(st.none(), _index),
    ),
    st.tuples(st.just("fail_llm"), _index, st.booleans(), _attempt, st.none() | _seconds),
    st.tuples(st.just("request_tools"), _index, _attempt, _seconds),
    st.tuples(st.just("complete_tool"), _index, _index),
    st.tuples(st.just("fail_tool"), _index, _index, st.booleans(), _attempt),
    st.tuples(st.just("error")),
)
_endings: st.SearchStrategy[Action] = st.one_of(
    st.tuples(st.just("started")),
    st.tuples(st.just("terminate")),
    st.tuples(st.just("complete"), st.sampled_from(_REASONS)),
)


@st.composite
def _scripts(draw: st.DrawFn) -> list[Action]:
    """Mostly protocol writes; at most two lifecycle events, as in real threads."""
    script = draw(st.lists(_protocol, max_size=30))
    for _ in range(draw(st.sampled_from((0, 0, 0, 0, 1, 2)))):
        at = draw(st.integers(min_value=0, max_value=len(script)))
        script.insert(at, draw(_endings))
    return script


scripts = _scripts()


@dataclass
class Replay:
    """The events a script produced and the ids its step references resolved to."""

    events: list[Recorded[Event]]
    steps: list[str] = field(default_factory=list)

    def step_map(self, other: Replay) -> dict[str, str]:
        """This replay's step ids (LLM and tool) to the same steps' ids in `other`."""
        pairs = dict(zip(self.steps, other.steps, strict=True))
        pairs.update({tool_step_id(a): tool_step_id(b) for a, b in pairs.items()})
        return pairs


def replay(script: Sequence[Action], unknown_before: frozenset[int] = frozenset()) -> Replay:
    """Run `script`; an event of an unknown type is written before each action in
    `unknown_before` (index len(script) means after the last action), taking no time."""
    thread = ThreadEvents()
    thread.started()
    steps: list[str] = []
    claims: list[int] = []
    calls: dict[str, tuple[ToolCall, ...]] = {}

    def step(ref: int) -> str:
        if not steps:
            steps.append(thread.claim())
            claims.append(thread.head)
        return steps[ref % len(steps)]

    def tool_call(step_id: str, ref: int) -> ToolCall:
        made = calls.get(step_id) or (call("c0"),)
        return made[ref % len(made)]

    for index, action in enumerate(script):
        if index in unknown_before:
            thread.unknown("NotYetInvented", tick=False, index=index)
        kind, *args = action
        if kind == "user":
            thread.user(args[0])
        elif kind == "claim":
            fresh, ref, attempt, lease = args
            written = len(thread.events)
            if fresh or not steps:
                steps.append(thread.claim(attempt=attempt, lease=timedelta(seconds=lease)))
            else:
                thread.claim(step(ref), attempt=attempt, lease=timedelta(seconds=lease))
            if len(thread.events) > written:
                claims.append(thread.head)
        elif kind == "respond":
            ref, text, n_calls, claim_ref = args
            step_id = step(ref)
            made = tuple(call(f"{len(calls)}-{i}") for i in range(n_calls))
            cause = None if claim_ref is None or not claims else claims[claim_ref % len(claims)]
            if thread.respond(step_id, text, made, caused_by=cause):
                calls[step_id] = made
        elif kind == "fail_llm":
            ref, retryable, attempt, after = args
            thread.fail_llm(
                step(ref),
                retryable=retryable,
                attempt=attempt,
                retry_after=None if after is None else timedelta(seconds=after),
            )
        elif kind == "request_tools":
            ref, attempt, lease = args
            step_id = step(ref)
            made = calls.get(step_id) or (call("c0"),)
            thread.request_tools(step_id, made, attempt=attempt, lease=timedelta(seconds=lease))
        elif kind == "complete_tool":
            ref, call_ref = args
            step_id = step(ref)
            thread.complete_tool(step_id, tool_call(step_id, call_ref))
        elif kind == "fail_tool":
            ref, call_ref, retryable, attempt = args
            step_id = step(ref)
            thread.fail_tool(
                step_id, tool_call(step_id, call_ref), retryable=retryable, attempt=attempt
            )
        elif kind == "started":
            thread.started()
        elif kind == "terminate":
            thread.terminate()
        elif kind == "complete":
            thread.complete(args[0])
        elif kind == "error":
            thread.error()
    if len(script) in unknown_before:
        thread.unknown("NotYetInvented", tick=False, index=len(script))
    return Replay(thread.events, steps)
