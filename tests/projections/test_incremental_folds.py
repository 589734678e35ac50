"""Folding a history piece by piece gives exactly what projecting it whole gives.

The engine keeps `NextStepFold` and `LLMContextFold` current as it appends, instead of
re-projecting the whole thread for every step; this is what makes that safe.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.projections.histories import Action, replay, scripts

from messagedb_agent.projections.llm_context import LLMContextFold, project_llm_context
from messagedb_agent.projections.next_step import NextStepFold, Policy, project_next_step

POLICY = Policy(max_iterations=3, max_llm_attempts=3, max_tool_attempts=2)


@settings(max_examples=150, deadline=None)
@given(scripts, st.data())
def test_any_split_into_feeds_equals_the_whole_projection(
    script: list[Action], data: st.DataObject
) -> None:
    events = replay(script).events
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    next_fold, context_fold = NextStepFold(), LLMContextFold()
    start = 0
    for cut in [*cuts, len(events)]:
        piece = events[start:cut]
        next_fold.feed(piece)
        context_fold.feed(piece)
        start = max(start, cut)
        seen = events[:start]
        if not seen:
            continue
        now = seen[-1].time + timedelta(seconds=data.draw(st.integers(0, 400)))
        assert next_fold.decide(now, POLICY) == project_next_step(seen, now, POLICY)
        assert context_fold.context() == project_llm_context(seen)
