"""Properties every projection keeps for any history: pure, total, blind to unknown types."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.projections.histories import Action, Replay, replay, scripts
from tests.projections.thread_events import STREAM

from messagedb_agent.events.ids import llm_step_id
from messagedb_agent.projections.llm_context import project_llm_context
from messagedb_agent.projections.next_step import (
    NextStep,
    Policy,
    StepKind,
    project_next_step,
    project_pending_tool_calls,
)
from messagedb_agent.projections.session_state import project_session_state

POLICY = Policy(max_iterations=3, max_llm_attempts=3, max_tool_attempts=2)
offsets = st.integers(min_value=0, max_value=400).map(lambda s: timedelta(seconds=s))


@st.composite
def scripts_with_unknowns(draw: st.DrawFn) -> tuple[list[Action], frozenset[int]]:
    script = draw(scripts)
    slots = st.integers(min_value=0, max_value=len(script))
    return script, frozenset(draw(st.lists(slots, min_size=1, max_size=5)))


@settings(max_examples=150, deadline=None)
@given(scripts, offsets)
def test_every_projection_gives_the_same_answer_twice(
    script: list[Action], offset: timedelta
) -> None:
    events = replay(script).events
    now = events[-1].time + offset
    assert project_llm_context(events) == project_llm_context(list(events))
    assert project_session_state(events) == project_session_state(list(events))
    assert project_pending_tool_calls(events) == project_pending_tool_calls(list(events))
    assert project_next_step(events, now, POLICY) == project_next_step(list(events), now, POLICY)


@settings(max_examples=150, deadline=None)
@given(scripts, offsets)
def test_every_prefix_of_a_history_projects_without_raising(
    script: list[Action], offset: timedelta
) -> None:
    events = replay(script).events
    for cut in range(len(events) + 1):
        prefix = events[:cut]
        now = (prefix[-1].time if prefix else events[0].time) + offset
        decision = project_next_step(prefix, now, POLICY)
        assert decision.head == (prefix[-1].position if prefix else -1)
        project_llm_context(prefix)
        project_pending_tool_calls(prefix)
        assert project_session_state(prefix).version == decision.head


@settings(max_examples=150, deadline=None)
@given(scripts_with_unknowns(), offsets)
def test_events_of_unknown_types_change_no_projection(
    script_and_slots: tuple[list[Action], frozenset[int]], offset: timedelta
) -> None:
    script, slots = script_and_slots
    plain, mixed = replay(script), replay(script, slots)
    assert len(mixed.events) == len(plain.events) + len(slots)
    now = plain.events[-1].time + offset

    assert project_llm_context(mixed.events) == project_llm_context(plain.events)
    assert project_pending_tool_calls(mixed.events) == project_pending_tool_calls(plain.events)
    plain_state = project_session_state(plain.events)
    mixed_state = project_session_state(mixed.events)
    assert mixed_state.version == mixed.events[-1].position
    assert mixed_state == dataclasses.replace(plain_state, version=mixed_state.version)

    expected = _translated(project_next_step(plain.events, now, POLICY), plain, mixed)
    assert project_next_step(mixed.events, now, POLICY) == expected


def _translated(decision: NextStep, plain: Replay, mixed: Replay) -> NextStep:
    """The decision `plain` got, in `mixed`'s terms: its step ids and head."""
    head = mixed.events[-1].position
    step_id = decision.step_id
    if decision.kind is StepKind.LLM_CALL and step_id == llm_step_id(
        STREAM, plain.events[-1].position
    ):
        step_id = llm_step_id(STREAM, head)  # a new step is named after the head
    elif step_id is not None:
        step_id = plain.step_map(mixed)[step_id]
    return dataclasses.replace(decision, step_id=step_id, head=head)
