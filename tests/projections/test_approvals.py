"""Approvals folded one event at a time are the approvals of the whole list, at every prefix.

The AG-UI stream keeps an `ApprovalsFold` current as events arrive; the histories here mix
requests, reruns asked about, decisions, results, cancels and responses that start new tool
steps, in and out of place, and each value read along the way must stay what it was.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.events import Event, Recorded, TurnCancelled
from messagedb_agent.events.approval import (
    EXPIRED,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
)
from messagedb_agent.events.ids import approval_decision_id, tool_step_id
from messagedb_agent.projections.approvals import Approvals, ApprovalsFold, project_approvals

# mostly the latest step and its first calls, so that questions meet their decisions
_step = st.sampled_from((0, 0, 0, 1))  # how many steps back from the latest
_call = st.sampled_from((0, 0, 1, 2))
_retry = st.sampled_from((None, None, 1, 2))
_actions = st.lists(
    st.one_of(
        st.tuples(st.just("respond"), st.integers(min_value=0, max_value=2)),
        st.tuples(st.just("ask"), _step, _call, _retry),
        st.tuples(st.just("grant"), _step, _call, _retry),
        st.tuples(st.just("deny"), _step, _call, _retry, st.booleans()),
        st.tuples(st.just("complete"), _step, _call),
        st.tuples(st.just("fail"), _step, _call, st.booleans()),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("user")),
    ),
    max_size=40,
)


def history(actions: list[tuple[Any, ...]]) -> list[Recorded[Event]]:
    """The actions written. Every step's calls are c0, c1..., so steps share call ids; an
    action may name a call its step never made."""
    thread = ThreadEvents()
    thread.started()
    steps: list[str] = []

    def respond(calls: int) -> None:
        steps.append(thread.claim())
        thread.respond(steps[-1], "", [call(f"c{i}", "delete_task") for i in range(calls)])

    for kind, *args in actions:
        if kind == "respond":
            respond(args[0])
            continue
        if not steps:
            respond(1)
        if kind == "user":
            thread.user("and another thing")
        elif kind == "cancel":
            thread.add(TurnCancelled(requested_by="ada"))
        else:
            llm_step = steps[max(0, len(steps) - 1 - args[0])]
            made = call(f"c{args[1]}", "delete_task")
            step = tool_step_id(llm_step)
            if kind == "ask":
                thread.add(
                    ToolApprovalRequested(
                        step_id=step,
                        tool_call_id=made.id,
                        tool_name=made.name,
                        arguments={},
                        decider="ada",
                        retry_of=args[2],
                    )
                )
            elif kind == "grant":
                thread.add(
                    ToolApprovalGranted(
                        step_id=step, tool_call_id=made.id, decided_by="ada", retry_of=args[2]
                    ),
                    approval_decision_id(step, made.id, args[2]),
                )
            elif kind == "deny":
                thread.add(
                    ToolApprovalDenied(
                        step_id=step,
                        tool_call_id=made.id,
                        tool_name=made.name,
                        decided_by="ada",
                        reason=EXPIRED if args[3] else "no",
                        retry_of=args[2],
                    ),
                    approval_decision_id(step, made.id, args[2]),
                )
            elif kind == "complete":
                thread.complete_tool(llm_step, made)
            else:
                thread.fail_tool(llm_step, made, retryable=args[2])
    return thread.events


@settings(max_examples=200, deadline=None)
@given(_actions)
def test_folding_one_event_at_a_time_equals_projecting_every_prefix(
    actions: list[tuple[Any, ...]],
) -> None:
    events = history(actions)
    fold = ApprovalsFold()
    seen: list[Approvals] = []
    for recorded in events:
        fold.apply(recorded)
        seen.append(fold.approvals)
    # read after the whole history was applied: a value handed out earlier did not move
    assert seen == [project_approvals(events[: k + 1]) for k in range(len(events))]


def test_a_decision_lands_on_the_latest_question_and_a_rerun_question_replaces_it() -> None:
    events = history(
        [("respond", 1), ("ask", 0, 0, None), ("deny", 0, 0, None, False), ("ask", 0, 0, 1)]
    )
    fold = ApprovalsFold()
    for recorded in events[:-1]:
        fold.apply(recorded)
    [declined] = fold.approvals.by_call.values()
    assert (declined.decision, declined.retry_of) == ("declined", None)
    fold.apply(events[-1])
    [asked_again] = fold.approvals.pending
    assert (asked_again.decision, asked_again.retry_of) == (None, 1)
    assert declined.decision == "declined"  # the value read before is unchanged
