"""A thread's vital signs, folded from its events."""

from __future__ import annotations

import pytest
from tests.projections.thread_events import STREAM, ThreadEvents, call

from messagedb_agent.events import TokenUsage
from messagedb_agent.events.system import CompletionReason
from messagedb_agent.projections.session_state import SessionState, Status, project_session_state


def _busy_thread() -> ThreadEvents:
    """Two turns, two tool calls (one retried), one LLM failure, one stray error."""
    thread = ThreadEvents()
    thread.started(owner="ada", model="claude", title=None)
    thread.user("weather in Oslo and Rome?")
    step = thread.claim()
    thread.fail_llm(step, retryable=True)
    thread.claim(step, attempt=2)
    oslo, rome = call("a"), call("b")
    thread.respond(step, "", (oslo, rome), TokenUsage(input_tokens=100, output_tokens=20))
    thread.request_tools(step, (oslo, rome))
    thread.complete_tool(step, oslo)
    thread.fail_tool(step, rome, retryable=True)
    thread.request_tools(step, (rome,), attempt=2)
    thread.fail_tool(step, rome, retryable=False)
    final = thread.claim()
    thread.respond(
        final, "3 degrees; Rome is unknown", (), TokenUsage(input_tokens=150, output_tokens=30)
    )
    thread.error()
    thread.user("thanks")
    step = thread.claim()
    thread.respond(step, "you're welcome", (), TokenUsage(input_tokens=200, output_tokens=5))
    return thread


def test_an_empty_thread_is_new() -> None:
    assert project_session_state([]) == SessionState()


def test_counts_and_token_usage_add_up() -> None:
    thread = _busy_thread()
    state = project_session_state(thread.events)
    assert state.owner == "ada"
    assert state.model == "claude"
    assert state.stream_name == STREAM
    assert state.status == "active"
    assert state.user_message_count == 2
    assert state.assistant_message_count == 2  # the tool-only response says nothing
    assert state.message_count == 4
    assert state.llm_call_count == 3
    assert state.llm_failure_count == 1
    assert state.tool_call_count == 2
    assert state.tool_error_count == 2
    assert state.error_count == 1
    assert state.token_usage == TokenUsage(input_tokens=450, output_tokens=55)
    assert state.last_user_message == "thanks"
    assert state.last_assistant_message == "you're welcome"


def test_token_usage_counts_cached_input_and_thinking_tokens_too() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("plan my week")
    step = thread.claim()
    usage = TokenUsage(
        input_tokens=1_000, output_tokens=300, cached_input_tokens=800, thinking_tokens=250
    )
    thread.respond(step, "done", (), usage)
    thread.user("and next week")
    step = thread.claim()
    thread.respond(step, "done", (), TokenUsage(input_tokens=1_400, output_tokens=20))

    state = project_session_state(thread.events)

    assert state.token_usage == TokenUsage(
        input_tokens=2_400, output_tokens=320, cached_input_tokens=800, thinking_tokens=250
    )
    assert state.token_usage.total_tokens == 2_720


def test_the_title_comes_from_the_first_message_unless_one_was_given() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.answered_turn("x" * 100, "ok")
    thread.user("another message")
    assert project_session_state(thread.events).title == "x" * 80

    titled = ThreadEvents()
    titled.started(title="Trip planning")
    titled.user("hello")
    assert project_session_state(titled.events).title == "Trip planning"


def test_version_and_activity_come_from_the_last_event_and_creation_from_the_first() -> None:
    thread = _busy_thread()
    thread.unknown()
    state = project_session_state(thread.events)
    assert state.version == thread.head
    assert state.last_activity_at == thread.now
    assert state.created_at == thread.start


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("success", "completed"),
        ("terminated", "terminated"),
        ("failure", "failed"),
        ("timeout", "failed"),
        ("max_iterations", "failed"),
    ],
)
def test_the_completion_reason_sets_the_status(reason: CompletionReason, status: Status) -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("hello")
    thread.complete(reason)
    state = project_session_state(thread.events)
    assert state.status == status
    assert state.completion_reason == reason
    assert not state.is_open


def test_continuing_from_an_earlier_state_equals_folding_everything() -> None:
    events = _busy_thread().events
    for cut in range(len(events) + 1):
        earlier = project_session_state(events[:cut])
        assert project_session_state(events[cut:], start=earlier) == project_session_state(
            events
        ), f"continuing after {cut} events"


def test_a_compaction_counts_as_a_model_call_with_its_tokens() -> None:
    from messagedb_agent.events import ContextCompacted

    thread = ThreadEvents()
    thread.started()
    thread.user("hello")
    thread.add(
        ContextCompacted(
            step_id="compaction-1",
            summary="s",
            first_kept_position=1,
            summarised_messages=1,
            tokens_before=10,
            model_name="offline",
            token_usage=TokenUsage(input_tokens=70, output_tokens=9),
        )
    )
    state = project_session_state(thread.events)
    assert state.llm_call_count == 1
    assert state.token_usage == TokenUsage(input_tokens=70, output_tokens=9)
    assert state.assistant_message_count == 0  # nobody reads a summary as a reply
