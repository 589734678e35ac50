"""Tool calls still waiting for a final outcome."""

from __future__ import annotations

from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.projections.next_step import project_pending_tool_calls


def _asking_for(*calls_: str) -> tuple[ThreadEvents, str]:
    thread = ThreadEvents()
    thread.started()
    thread.user("do things")
    step = thread.claim()
    thread.respond(step, "", tuple(call(c) for c in calls_))
    return thread, step


def test_a_thread_without_tool_calls_has_none_pending() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.answered_turn("hi", "hello")
    assert project_pending_tool_calls(thread.events) == ()


def test_all_calls_of_the_latest_response_are_pending_until_resolved() -> None:
    thread, step = _asking_for("a", "b")
    assert project_pending_tool_calls(thread.events) == (call("a"), call("b"))
    thread.request_tools(step, (call("a"), call("b")))
    assert project_pending_tool_calls(thread.events) == (call("a"), call("b"))
    thread.complete_tool(step, call("b"))
    assert project_pending_tool_calls(thread.events) == (call("a"),)
    thread.fail_tool(step, call("a"), retryable=False)
    assert project_pending_tool_calls(thread.events) == ()


def test_a_retryable_failure_keeps_the_call_pending() -> None:
    thread, step = _asking_for("a")
    thread.request_tools(step, (call("a"),))
    thread.fail_tool(step, call("a"), retryable=True)
    assert project_pending_tool_calls(thread.events) == (call("a"),)


def test_results_of_another_step_resolve_nothing() -> None:
    thread, _step = _asking_for("a")
    thread.complete_tool("some-other-step", call("a"))
    assert project_pending_tool_calls(thread.events) == (call("a"),)


def test_a_newer_response_replaces_the_calls_of_an_older_one() -> None:
    thread, step = _asking_for("a")
    thread.complete_tool(step, call("a"))
    follow_up = thread.claim()
    thread.respond(follow_up, "", (call("c"),))
    assert project_pending_tool_calls(thread.events) == (call("c"),)
