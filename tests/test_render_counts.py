"""Counts in the CLI's summaries agree with their nouns: one tool call, two tool calls."""

from __future__ import annotations

from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.events import ContextCompacted, TokenUsage
from messagedb_agent.projections.cost import PriceTable
from messagedb_agent.render import counted, event_line, summary_line, transcript


def test_counted_uses_the_singular_for_one_only() -> None:
    assert counted(1, "tool call") == "1 tool call"
    assert counted(0, "tool call") == "0 tool calls"
    assert counted(2, "reply", "replies") == "2 replies"


def test_a_summary_with_one_of_each_says_so_in_the_singular() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("add milk")
    step = thread.claim()
    milk = call("c1", "add_task", title="milk")
    thread.respond(step, "adding it", [milk], TokenUsage(input_tokens=1, output_tokens=0))
    thread.complete_tool(step, milk)

    line = summary_line(thread.events, PriceTable())

    assert "1 user / 1 assistant message ·" in line
    assert "· 1 tool call ·" in line
    assert "· 1 model call ·" in line
    assert "· 1 token ·" in line
    assert line.endswith(f"· {len(thread.events)} events")


def test_a_summary_with_several_keeps_the_plural() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("hi")
    thread.user("anyone?")

    line = summary_line(thread.events, PriceTable())

    assert "2 user / 0 assistant messages ·" in line
    assert "· 0 tool calls · 0 model calls ·" in line


def test_one_summarised_message_is_singular_in_the_transcript_and_the_event_line() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("hi")
    compacted = thread.add(
        ContextCompacted(
            step_id="s1",
            summary="they said hi",
            summarised_messages=1,
            first_kept_position=2,
            tokens_before=900,
            model_name="offline",
        )
    )
    assert compacted is not None

    assert "1 earlier message summarised" in transcript(thread.events)[-1]
    assert "1 message before #2" in event_line(compacted)
