"""The conversation the model is given, projected from a thread's events."""

from __future__ import annotations

from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.events import LLMResponseReceived
from messagedb_agent.llm.types import AssistantTurn, ToolResult, UserTurn
from messagedb_agent.projections.llm_context import LLMContext, project_llm_context


def test_an_empty_thread_has_an_empty_context() -> None:
    assert project_llm_context([]) == LLMContext(None, ())


def test_a_plain_turn_is_the_question_then_the_answer() -> None:
    thread = ThreadEvents()
    thread.started(system_prompt="Be brief.")
    thread.answered_turn("what is the weather?", "sunny")
    context = project_llm_context(thread.events)
    assert context.system_prompt == "Be brief."
    assert context.messages == (UserTurn("what is the weather?"), AssistantTurn("sunny"))


def test_parallel_tool_results_follow_their_call_in_the_models_order() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("weather in Oslo and Rome?")
    step = thread.claim()
    oslo, rome = call("a", city="Oslo"), call("b", city="Rome")
    thread.respond(step, "checking", (oslo, rome))
    thread.request_tools(step, (oslo, rome))
    thread.complete_tool(step, rome, {"temp": 25})  # finished first, still listed second
    thread.complete_tool(step, oslo, {"temp": 3})
    final = thread.claim()
    thread.respond(final, "3 and 25 degrees")
    assert project_llm_context(thread.events).messages == (
        UserTurn("weather in Oslo and Rome?"),
        AssistantTurn("checking", (oslo, rome)),
        ToolResult("a", "lookup", {"temp": 3}),
        ToolResult("b", "lookup", {"temp": 25}),
        AssistantTurn("3 and 25 degrees"),
    )


def test_a_final_tool_failure_is_fed_back_as_an_error_result() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("weather?")
    step = thread.claim()
    lookup = call("a")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,))
    thread.fail_tool(step, lookup, retryable=False, message="unknown city")
    assert project_llm_context(thread.events).messages[-1] == ToolResult(
        "a", "lookup", {"error": "unknown city", "kind": "invalid_arguments"}, is_error=True
    )


def test_a_retried_tool_call_contributes_only_its_final_result() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("weather?")
    step = thread.claim()
    lookup = call("a")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,))
    thread.fail_tool(step, lookup, retryable=True)
    thread.request_tools(step, (lookup,), attempt=2)
    thread.complete_tool(step, lookup, "sunny")
    results = [m for m in project_llm_context(thread.events).messages if isinstance(m, ToolResult)]
    assert results == [ToolResult("a", "lookup", "sunny")]


def test_a_message_sent_while_the_model_was_thinking_comes_after_its_answer() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("first")
    step = thread.claim()
    thread.user("second")
    thread.respond(step, "answer to first")
    assert project_llm_context(thread.events).messages == (
        UserTurn("first"),
        AssistantTurn("answer to first"),
        UserTurn("second"),
    )


def test_a_message_sent_while_tools_ran_comes_after_their_results() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("first")
    step = thread.claim()
    lookup = call("a")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,))
    thread.user("second")
    thread.complete_tool(step, lookup, "done")
    assert project_llm_context(thread.events).messages == (
        UserTurn("first"),
        AssistantTurn("", (lookup,)),
        ToolResult("a", "lookup", "done"),
        UserTurn("second"),
    )


def test_an_answer_from_a_retry_comes_after_the_message_the_retry_saw() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("first")
    step = thread.claim()
    thread.user("second")
    thread.fail_llm(step, retryable=True, attempt=1)
    thread.claim(step, attempt=2)
    thread.respond(step, "answer to both")
    assert project_llm_context(thread.events).messages == (
        UserTurn("first"),
        UserTurn("second"),
        AssistantTurn("answer to both"),
    )


def test_an_answer_from_a_silent_first_claim_comes_before_the_message_it_never_saw() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("first")
    step = thread.claim()
    thread.user("second")
    thread.claim(step, attempt=2)
    thread.respond(step, "answer to first")
    assert project_llm_context(thread.events).messages == (
        UserTurn("first"),
        AssistantTurn("answer to first"),
        UserTurn("second"),
    )


def test_events_that_are_not_conversation_are_left_out() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.unknown(note="from newer code")
    thread.answered_turn("hello", "hi")
    thread.error()
    thread.terminate()
    assert project_llm_context(thread.events).messages == (UserTurn("hello"), AssistantTurn("hi"))


def test_a_provider_s_signatures_come_back_with_the_turn_they_were_given_on() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("add milk")
    step = thread.claim()
    thread.add(
        LLMResponseReceived(
            step_id=step,
            tool_calls=(call("c1", "add_task"),),
            model_name="gemini-3-pro",
            thought_signatures={"c1": "c2lnbmF0dXJl"},
        )
    )
    turn = project_llm_context(thread.events).messages[1]
    assert isinstance(turn, AssistantTurn)
    assert turn.thought_signatures == {"c1": "c2lnbmF0dXJl"}
