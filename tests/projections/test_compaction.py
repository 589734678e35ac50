"""A long thread's context stays bounded: compaction plans and their summaries, pure."""

from __future__ import annotations

from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.events import ContextCompacted, ToolExecutionCompleted
from messagedb_agent.events.ids import compaction_step_id, message_id
from messagedb_agent.llm.prompts import SUMMARY_PREFIX
from messagedb_agent.llm.types import AssistantTurn, ContextSummary, ToolResult, UserTurn
from messagedb_agent.projections.llm_context import (
    LLMContextFold,
    estimate_tokens,
    project_llm_context,
)
from messagedb_agent.projections.next_step import NextStepFold

WORDS = "word " * 40  # about 50 tokens a message


def long_thread(turns: int) -> ThreadEvents:
    thread = ThreadEvents()
    thread.started()
    for n in range(turns):
        thread.answered_turn(f"request {n}: {WORDS}", f"answer {n}: {WORDS}")
    return thread


def compact(thread: ThreadEvents, first_kept: int, summary: str = "they talked") -> None:
    step = compaction_step_id(thread.stream, thread.head)
    thread.add(
        ContextCompacted(
            step_id=step,
            summary=summary,
            first_kept_position=first_kept,
            summarised_messages=1,
            tokens_before=1,
            model_name="offline",
        ),
        message_id(step, "compacted"),
    )


def test_a_context_under_its_budget_is_not_compacted() -> None:
    thread = long_thread(3)
    fold = LLMContextFold().feed(thread.events)
    assert fold.compaction(budget=fold.tokens) is None


def test_a_context_over_its_budget_keeps_its_latest_turns_up_to_a_share_of_the_budget() -> None:
    thread = long_thread(20)
    thread.user("and now?")
    fold = LLMContextFold().feed(thread.events)
    plan = fold.compaction(budget=1000)
    assert plan is not None
    assert plan.tokens_before == fold.tokens > 1000
    assert plan.kept_tokens <= 400
    kept = project_llm_context(thread.events).messages[len(plan.summarised) :]
    assert isinstance(kept[0], UserTurn)  # the cut is at a user message
    assert kept[-1] == UserTurn("and now?")
    assert plan.first_kept_position == next(
        e.position
        for e in thread.events
        if getattr(e.event, "message", None) == kept[0].text  # type: ignore[union-attr]
    )


def test_a_tool_call_is_never_parted_from_its_result() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user(f"first {WORDS}")
    step = thread.claim()
    lookup = call("c1", q="x")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,))
    thread.complete_tool(step, lookup, "ok")
    final = thread.claim()
    thread.respond(final, "done")
    thread.user("next")
    # the share kept (20 tokens) would end between the call (15) and its result (5)
    plan = LLMContextFold().feed(thread.events).compaction(budget=50)
    assert plan is not None
    assert plan.summarised[-1] == AssistantTurn("done")
    calls = [m for m in plan.summarised if isinstance(m, AssistantTurn) and m.tool_calls]
    results = [m for m in plan.summarised if isinstance(m, ToolResult)]
    assert len(calls) == len(results) == 1


def test_the_summary_stands_for_what_it_covers_and_later_messages_follow_it() -> None:
    thread = long_thread(5)
    kept_at = thread.user("the one that stays")
    compact(thread, kept_at, "the user asked five things")
    thread.user("arrived after the compaction")
    messages = project_llm_context(thread.events).messages
    assert messages == (
        ContextSummary(SUMMARY_PREFIX + "the user asked five things"),
        UserTurn("the one that stays"),
        UserTurn("arrived after the compaction"),
    )


def test_a_second_compaction_replaces_the_first_summary_too() -> None:
    thread = long_thread(3)
    compact(thread, thread.user("middle"), "first summary")
    thread.answered_turn("more", "sure")
    compact(thread, thread.user("latest"), "second summary")
    messages = project_llm_context(thread.events).messages
    assert messages[0] == ContextSummary(SUMMARY_PREFIX + "second summary")
    assert [m for m in messages if isinstance(m, ContextSummary)] == [messages[0]]
    assert messages[1:] == (UserTurn("latest"),)


def test_nothing_but_the_summary_before_the_cut_is_no_reason_to_compact() -> None:
    thread = long_thread(2)
    compact(thread, thread.user(f"big {WORDS * 20}"), "earlier")
    fold = LLMContextFold().feed(thread.events)
    assert fold.tokens > 200
    assert fold.compaction(budget=200) is None


def test_the_incremental_fold_equals_the_projection_across_compactions() -> None:
    thread = long_thread(4)
    compact(thread, thread.user("kept"), "s1")
    thread.answered_turn("later", "ok")
    whole = project_llm_context(thread.events)
    fold = LLMContextFold()
    for event in thread.events:
        fold.feed([event])
    assert fold.context() == whole
    assert fold.tokens == LLMContextFold().feed(thread.events).tokens


def test_a_long_tool_result_is_cut_for_the_model_with_a_note_and_kept_whole_in_the_event() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("dump it")
    step = thread.claim()
    dump = call("c1", name="dump")
    thread.respond(step, "", (dump,))
    thread.request_tools(step, (dump,))
    thread.complete_tool(step, dump, "x" * 5000)
    [result] = [
        m for m in project_llm_context(thread.events, 1000).messages if isinstance(m, ToolResult)
    ]
    assert result.content["truncated"] is True
    assert len(result.content["partial"]) == 1000
    assert "5000 characters" in result.content["note"]
    stored = [e.event for e in thread.events if isinstance(e.event, ToolExecutionCompleted)]
    assert stored[0].result == "x" * 5000
    assert estimate_tokens(result) < 400


def test_only_a_turns_first_call_may_be_preceded_by_a_compaction() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("go")
    assert NextStepFold().feed(thread.events).may_compact
    step = thread.claim()
    lookup = call("c1")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,))
    thread.complete_tool(step, lookup)
    assert not NextStepFold().feed(thread.events).may_compact  # mid-turn: never split it
