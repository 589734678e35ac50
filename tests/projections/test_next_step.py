"""The next-step decision, one protocol situation per test."""

from __future__ import annotations

from datetime import timedelta

from tests.projections.thread_events import LLM_LEASE, STREAM, TOOL_LEASE, ThreadEvents, call

from messagedb_agent.events.ids import llm_step_id, tool_step_id
from messagedb_agent.projections.next_step import NextStep, Policy, StepKind, project_next_step


def _asked(text: str = "what is the weather?") -> ThreadEvents:
    thread = ThreadEvents()
    thread.started()
    thread.user(text)
    return thread


def _decide(thread: ThreadEvents, after: timedelta = timedelta(), **policy: int) -> NextStep:
    return project_next_step(thread.events, thread.now + after, Policy(**policy))


# -- waiting and starting -------------------------------------------------------------------------


def test_an_empty_stream_waits_for_the_user() -> None:
    assert project_next_step([], ThreadEvents().now) == NextStep(StepKind.WAIT_FOR_USER, head=-1)


def test_a_started_thread_without_messages_waits_for_the_user() -> None:
    thread = ThreadEvents()
    thread.started()
    assert _decide(thread).kind is StepKind.WAIT_FOR_USER


def test_a_new_user_message_asks_for_an_llm_call_named_after_the_head() -> None:
    thread = _asked()
    decision = _decide(thread)
    assert decision == NextStep(StepKind.LLM_CALL, llm_step_id(STREAM, 1), 1, head=1)


def test_the_step_id_is_the_same_for_the_same_events() -> None:
    first, second = _asked(), _asked()
    assert _decide(first).step_id == _decide(second).step_id
    second.user("and tomorrow?")
    assert _decide(second).step_id == llm_step_id(STREAM, 2) != _decide(first).step_id


def test_a_final_answer_leaves_the_thread_waiting_for_the_user() -> None:
    thread = _asked()
    step = thread.claim()
    thread.respond(step, "sunny")
    assert _decide(thread) == NextStep(StepKind.WAIT_FOR_USER, head=thread.head)


# -- claims and leases ----------------------------------------------------------------------------


def test_a_claim_with_a_live_lease_is_in_flight() -> None:
    thread = _asked()
    step = thread.claim()
    decision = _decide(thread, timedelta(seconds=30))
    assert decision.kind is StepKind.IN_FLIGHT
    assert decision.step_id == step
    assert decision.not_before == thread.now + LLM_LEASE


def test_an_expired_claim_is_offered_again_as_the_next_attempt_of_the_same_step() -> None:
    thread = _asked()
    step = thread.claim()
    decision = _decide(thread, LLM_LEASE + timedelta(seconds=1))
    assert decision == NextStep(StepKind.LLM_CALL, step, 2, head=thread.head)


def test_an_expired_claim_after_the_last_attempt_ends_the_thread() -> None:
    thread = _asked()
    step = thread.claim()
    thread.claim(step, attempt=2)
    decision = _decide(thread, LLM_LEASE * 2, max_llm_attempts=2)
    assert decision.kind is StepKind.TERMINATION
    assert decision.reason == "timeout"


# -- LLM failures ---------------------------------------------------------------------------------


def test_a_retryable_failure_waits_for_its_backoff() -> None:
    thread = _asked()
    step = thread.claim()
    thread.fail_llm(step, retryable=True, retry_after=timedelta(seconds=8))
    decision = _decide(thread, timedelta(seconds=2))
    assert decision.kind is StepKind.RETRY_LATER
    assert decision.step_id == step
    assert decision.not_before == thread.now + timedelta(seconds=8)


def test_a_retryable_failure_past_its_backoff_retries_the_same_step() -> None:
    thread = _asked()
    step = thread.claim()
    thread.fail_llm(step, retryable=True, retry_after=timedelta(seconds=8))
    decision = _decide(thread, timedelta(seconds=9))
    assert decision == NextStep(StepKind.LLM_CALL, step, 2, head=thread.head)


def test_a_retry_is_claimed_and_answered_under_the_original_step_id() -> None:
    thread = _asked()
    step = thread.claim()
    thread.fail_llm(step, retryable=True)
    thread.claim(step, attempt=2)
    assert _decide(thread).kind is StepKind.IN_FLIGHT
    thread.respond(step, "sunny")
    assert _decide(thread).kind is StepKind.WAIT_FOR_USER


def test_a_non_retryable_failure_ends_the_thread_with_its_reason() -> None:
    thread = _asked()
    step = thread.claim()
    thread.fail_llm(step, retryable=False, message="the request was malformed")
    decision = _decide(thread)
    assert decision.kind is StepKind.TERMINATION
    assert decision.reason == "failure"
    assert decision.message == "the request was malformed"


def test_a_retryable_failure_at_the_attempt_limit_ends_the_thread() -> None:
    thread = _asked()
    step = thread.claim()
    thread.fail_llm(step, retryable=True, attempt=1)
    thread.claim(step, attempt=2)
    thread.fail_llm(step, retryable=True, attempt=2)
    decision = _decide(thread, timedelta(minutes=5), max_llm_attempts=2)
    assert decision.kind is StepKind.TERMINATION
    assert decision.reason == "failure"


# -- tools ------------------------------------------------------------------------------------


def test_a_response_with_tool_calls_asks_to_run_them_in_the_models_order() -> None:
    thread = _asked()
    step = thread.claim()
    calls = (call("a", city="Oslo"), call("b", city="Rome"))
    thread.respond(step, "", calls)
    decision = _decide(thread)
    assert decision == NextStep(
        StepKind.TOOL_EXECUTION, tool_step_id(step), 1, head=thread.head, tool_calls=calls
    )


def test_claimed_tool_calls_with_live_leases_are_in_flight() -> None:
    thread = _asked()
    step = thread.claim()
    calls = (call("a"), call("b"))
    thread.respond(step, "", calls)
    thread.request_tools(step, calls)
    decision = _decide(thread, timedelta(seconds=10))
    assert decision.kind is StepKind.IN_FLIGHT
    assert decision.step_id == tool_step_id(step)
    assert decision.not_before == thread.events[-2].time + TOOL_LEASE


def test_tool_calls_whose_leases_expired_are_offered_again_as_the_next_attempt() -> None:
    """...marked silent: their worker recorded nothing, so only an idempotent tool may run
    again (the engine reports the others in doubt)."""
    thread = _asked()
    step = thread.claim()
    calls = (call("a"), call("b"))
    thread.respond(step, "", calls)
    thread.request_tools(step, calls)
    decision = _decide(thread, TOOL_LEASE + timedelta(seconds=1))
    assert decision == NextStep(
        StepKind.TOOL_EXECUTION,
        tool_step_id(step),
        2,
        head=thread.head,
        tool_calls=calls,
        silent=frozenset({"a", "b"}),
    )


def test_tool_calls_that_keep_timing_out_end_the_thread() -> None:
    thread = _asked()
    step = thread.claim()
    calls = (call("a"),)
    thread.respond(step, "", calls)
    thread.request_tools(step, calls, attempt=1)
    thread.request_tools(step, calls, attempt=2)
    decision = _decide(thread, TOOL_LEASE * 3, max_tool_attempts=2)
    assert decision.kind is StepKind.TERMINATION
    assert decision.reason == "timeout"


def test_only_unresolved_tool_calls_are_run_again() -> None:
    thread = _asked()
    step = thread.claim()
    first, second = call("a"), call("b")
    thread.respond(step, "", (first, second))
    thread.request_tools(step, (first, second))
    thread.complete_tool(step, first, 1)
    thread.fail_tool(step, second, retryable=True)
    decision = _decide(thread)
    assert decision.kind is StepKind.TOOL_EXECUTION
    assert decision.tool_calls == (second,)
    assert decision.attempt == 2


def test_a_retryable_tool_failure_then_success_continues_with_the_model() -> None:
    thread = _asked()
    step = thread.claim()
    lookup = call("a")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,))
    thread.fail_tool(step, lookup, retryable=True)
    thread.request_tools(step, (lookup,), attempt=2)
    thread.complete_tool(step, lookup, {"temp": 21})
    decision = _decide(thread)
    assert decision == NextStep(
        StepKind.LLM_CALL, llm_step_id(STREAM, thread.head), 1, head=thread.head
    )


def test_a_final_tool_failure_goes_back_to_the_model() -> None:
    thread = _asked()
    step = thread.claim()
    lookup = call("a")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,))
    thread.fail_tool(step, lookup, retryable=False)
    assert _decide(thread).kind is StepKind.LLM_CALL


def test_two_parallel_tool_calls_both_resolved_continue_with_the_model() -> None:
    thread = _asked()
    step = thread.claim()
    calls = (call("a"), call("b"))
    thread.respond(step, "", calls)
    thread.request_tools(step, calls)
    thread.complete_tool(step, calls[0])
    assert _decide(thread).kind is StepKind.IN_FLIGHT
    thread.complete_tool(step, calls[1])
    assert _decide(thread).kind is StepKind.LLM_CALL


# -- the turn and the thread ending ---------------------------------------------------------------


def test_a_message_sent_mid_turn_asks_for_another_llm_call() -> None:
    thread = _asked("first question")
    step = thread.claim()
    thread.user("second question")
    thread.respond(step, "answer to the first")
    decision = _decide(thread)
    assert decision == NextStep(
        StepKind.LLM_CALL, llm_step_id(STREAM, thread.head), 1, head=thread.head
    )


def test_a_late_answer_from_an_expired_claim_still_leaves_a_mid_turn_message_to_answer() -> None:
    thread = _asked("first question")
    step = thread.claim()  # this worker goes silent, then answers late
    thread.user("second question")
    thread.claim(step, attempt=2)  # the takeover saw the second question ...
    thread.respond(step, "answer to the first only")  # ... but the first worker answered
    decision = _decide(thread)
    assert decision.kind is StepKind.LLM_CALL


def test_a_retry_that_saw_a_mid_turn_message_has_answered_it() -> None:
    thread = _asked("first question")
    step = thread.claim()
    thread.user("second question")
    thread.fail_llm(step, retryable=True, attempt=1)
    thread.claim(step, attempt=2)
    thread.respond(step, "answer to both")
    assert _decide(thread).kind is StepKind.WAIT_FOR_USER


def test_max_iterations_in_one_turn_ends_the_thread() -> None:
    thread = _asked()
    for index in range(3):
        step = thread.claim()
        lookup = call(f"c{index}")
        thread.respond(step, "", (lookup,))
        thread.request_tools(step, (lookup,))
        thread.complete_tool(step, lookup)
    decision = _decide(thread, max_iterations=3)
    assert decision.kind is StepKind.TERMINATION
    assert decision.reason == "max_iterations"


def test_a_new_user_message_starts_a_new_iteration_budget() -> None:
    thread = _asked()
    for _ in range(2):
        step = thread.claim()
        thread.respond(step, "answer")
        thread.user("more")
    assert _decide(thread, max_iterations=2).kind is StepKind.LLM_CALL


def test_a_termination_request_ends_the_thread_even_mid_step() -> None:
    thread = _asked()
    thread.claim()
    thread.terminate("user_requested")
    decision = _decide(thread)
    assert decision.kind is StepKind.TERMINATION
    assert decision.reason == "user_requested"


def test_a_completed_thread_is_done() -> None:
    thread = _asked()
    thread.terminate()
    thread.complete("terminated")
    thread.user("are you there?")
    assert _decide(thread) == NextStep(StepKind.DONE, head=thread.head)


def test_events_of_unknown_types_do_not_wake_the_thread() -> None:
    thread = _asked()
    step = thread.claim()
    thread.respond(step, "sunny")
    thread.unknown(reason="written by newer code")
    thread.error()
    decision = _decide(thread)
    assert decision == NextStep(StepKind.WAIT_FOR_USER, head=thread.head)


# -- late and odd writes --------------------------------------------------------------------------


def test_an_answer_linked_to_the_takeover_claim_has_answered_what_that_claim_saw() -> None:
    thread = _asked("first question")
    step = thread.claim()
    thread.user("second question")
    thread.claim(step, attempt=2)
    thread.respond(step, "answer to both", caused_by=thread.head)
    assert _decide(thread, LLM_LEASE * 3).kind is StepKind.WAIT_FOR_USER


def test_an_answer_linked_to_the_silent_first_claim_leaves_the_later_message_open() -> None:
    thread = _asked("first question")
    step = thread.claim()
    first_claim = thread.head
    thread.user("second question")
    thread.claim(step, attempt=2)
    thread.respond(step, "answer to the first only", caused_by=first_claim)
    assert _decide(thread, LLM_LEASE * 3).kind is StepKind.LLM_CALL


def test_a_late_failure_of_an_answered_step_is_ignored() -> None:
    thread = _asked()
    step = thread.claim()
    thread.claim(step, attempt=2)
    thread.respond(step, "sunny")
    thread.fail_llm(step, retryable=False, attempt=1)
    assert _decide(thread).kind is StepKind.WAIT_FOR_USER


def test_a_late_failure_of_a_superseded_attempt_leaves_the_takeover_in_flight() -> None:
    thread = _asked()
    step = thread.claim()
    thread.claim(step, attempt=2)
    thread.fail_llm(step, retryable=True, attempt=1)
    decision = _decide(thread)
    assert decision.kind is StepKind.IN_FLIGHT
    assert decision.attempt == 2


def test_a_late_tool_failure_of_a_superseded_attempt_leaves_the_takeover_in_flight() -> None:
    thread = _asked()
    step = thread.claim()
    lookup = call("a")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,), attempt=1)
    thread.request_tools(step, (lookup,), attempt=2)
    thread.fail_tool(step, lookup, retryable=True, attempt=1)
    decision = _decide(thread)
    assert decision.kind is StepKind.IN_FLIGHT
    assert decision.attempt == 2


def test_a_retryable_tool_failure_at_the_attempt_limit_ends_the_thread() -> None:
    thread = _asked()
    step = thread.claim()
    lookup = call("a")
    thread.respond(step, "", (lookup,))
    thread.request_tools(step, (lookup,), attempt=1)
    thread.fail_tool(step, lookup, retryable=True, attempt=1, message="still down")
    decision = _decide(thread, max_tool_attempts=1)
    assert decision.kind is StepKind.TERMINATION
    assert decision.reason == "failure"
    assert decision.message == "still down"


def test_a_pending_call_is_not_rerun_while_another_is_still_leased() -> None:
    thread = _asked()
    step = thread.claim()
    first, second = call("a"), call("b")
    thread.respond(step, "", (first, second))
    thread.request_tools(step, (first,))
    assert _decide(thread).kind is StepKind.IN_FLIGHT


def test_naive_times_from_a_foreign_writer_are_read_as_utc() -> None:
    thread = _asked()
    step = thread.claim()
    thread.fail_llm(step, retryable=True, retry_after=timedelta(seconds=8))
    naive_now = (thread.now + timedelta(seconds=2)).replace(tzinfo=None)
    assert project_next_step(thread.events, naive_now).kind is StepKind.RETRY_LATER
