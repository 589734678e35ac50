"""The events a step writes, built from its decision and its effect's outcome: no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from tests.projections.thread_events import T0, ThreadEvents, call

from messagedb_agent.channels.callback import DeliveryError
from messagedb_agent.engine import effects
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import (
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    ModelUnavailable,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
    SessionCompleted,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionRequested,
)
from messagedb_agent.llm.types import LLMError, LLMResponse
from messagedb_agent.projections.next_step import NextStep, Policy, StepKind
from messagedb_agent.tools.context import ToolOutcome

CONFIG = EngineConfig(model="m", policy=Policy(max_llm_attempts=3, max_tool_attempts=2))


def _asked_for_tools() -> tuple[ThreadEvents, NextStep]:
    thread = ThreadEvents()
    thread.started()
    thread.user("add two things")
    step = thread.claim()
    thread.respond(step, "", (call("c1", "add", a=1), call("c2", "add", a=2)))
    view = ThreadView(thread.events)
    return thread, view.decide(thread.now, CONFIG.policy)


def test_an_llm_claim_is_leased_from_now_and_cut_at_the_decided_head() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("hello")
    view = ThreadView(thread.events)
    decision = view.decide(thread.now, CONFIG.policy)
    [(claim, claim_id)] = effects.claims(decision, view, T0, CONFIG, "worker-1")
    assert isinstance(claim, LLMCallRequested)
    assert claim.context_position == thread.head
    assert claim.context_messages == 1
    assert claim.lease_expires_at == T0 + CONFIG.llm_lease
    assert claim.worker == "worker-1"
    again = effects.claims(decision, view, T0 + timedelta(seconds=5), CONFIG, "worker-2")
    assert again[0][1] == claim_id  # two workers deciding alike collide on the same id


def test_a_thread_pinned_to_a_model_keeps_it_until_the_model_retires() -> None:
    thread = ThreadEvents()
    thread.started(model="gemini-2.5-flash")  # retired 2026-10-20, per the catalogue
    thread.user("hello")
    view = ThreadView(thread.events)
    decision = view.decide(thread.now, CONFIG.policy)
    before = datetime(2026, 10, 19, tzinfo=UTC)
    after = datetime(2026, 10, 21, tzinfo=UTC)
    [(kept, _)] = effects.claims(decision, view, before, CONFIG, "w")
    [(moved, _)] = effects.claims(decision, view, after, CONFIG, "w")
    assert isinstance(kept, LLMCallRequested)
    assert isinstance(moved, LLMCallRequested)
    assert (kept.model, moved.model) == ("gemini-2.5-flash", CONFIG.model)


def test_a_tool_step_claims_every_pending_call_with_one_lease() -> None:
    thread, decision = _asked_for_tools()
    assert decision.kind is StepKind.TOOL_EXECUTION
    pairs = effects.claims(decision, ThreadView(thread.events), T0, CONFIG, "w")
    requests = [event for event, _ in pairs]
    assert all(isinstance(r, ToolExecutionRequested) for r in requests)
    assert [r.tool_call_id for r in requests] == ["c1", "c2"]  # type: ignore[attr-defined]
    assert {r.lease_expires_at for r in requests} == {T0 + CONFIG.tool_lease}  # type: ignore[attr-defined]
    assert len({id_ for _, id_ in pairs}) == 2


def test_a_model_answer_keeps_its_ids_and_gets_unique_call_ids() -> None:
    response = LLMResponse(
        text="",
        tool_calls=(call("same"), call("same"), call("other")),
        model_name="m",
    )
    [(event, id_)] = effects.llm_answered("step-1", response, 12.3456)
    assert isinstance(event, LLMResponseReceived)
    ids = [c.id for c in event.tool_calls]
    assert len(set(ids)) == 3  # a repeated id is replaced, so each result pairs with its call
    assert (ids[0], ids[2]) == ("same", "other")
    assert event.latency_ms == 12.346
    assert id_ == effects.llm_answered("step-1", response, 99.0)[0][1]  # the same step, same id


def test_a_retryable_model_error_is_recorded_with_its_attempt_and_backoff() -> None:
    decision = NextStep(StepKind.LLM_CALL, "step-1", attempt=2)
    error = LLMError("overloaded", kind="rate_limited", retryable=True)
    [(event, _)] = effects.llm_failed(decision, error, T0, CONFIG, "m")
    assert isinstance(event, LLMCallFailed)
    assert (event.attempt, event.retryable, event.error_kind) == (2, True, "rate_limited")
    assert event.retry_at == T0 + CONFIG.backoff(2)


def test_a_model_still_overloaded_after_every_attempt_makes_the_thread_wait() -> None:
    decision = NextStep(StepKind.LLM_CALL, "step-1", attempt=3)
    error = LLMError("overloaded", kind="rate_limited", retryable=True)
    [(event, _)] = effects.llm_failed(decision, error, T0, CONFIG, "m")
    assert isinstance(event, ModelUnavailable)
    assert event.retryable
    assert event.retry_at == T0 + CONFIG.unavailable_retry
    assert event.notice == effects.UNAVAILABLE_NOTICE


@pytest.mark.parametrize("kind", ["auth", "model_not_found", "quota"])
def test_an_operator_fault_pauses_the_thread_and_tells_the_user_once(kind: str) -> None:
    error = LLMError("403 PERMISSION_DENIED", kind=kind, retryable=False)
    first = NextStep(StepKind.LLM_CALL, "step-1", attempt=1)
    [(paused, first_id)] = effects.llm_failed(first, error, T0, CONFIG, "m")
    assert isinstance(paused, ModelUnavailable)
    assert paused.notice == effects.UNAVAILABLE_NOTICE
    again = NextStep(StepKind.LLM_CALL, "step-1", attempt=2, last_failure=paused)
    [(still, second_id)] = effects.llm_failed(again, error, T0, CONFIG, "m")
    assert isinstance(still, ModelUnavailable)
    assert still.notice is None  # told once
    assert first_id != second_id


def test_a_request_the_model_can_never_accept_ends_the_turn_with_a_friendly_answer() -> None:
    decision = NextStep(StepKind.LLM_CALL, "step-1", attempt=1)
    error = LLMError("blocked", kind="safety", retryable=False)
    (failed, _), (answer, answer_id) = effects.llm_failed(decision, error, T0, CONFIG, "m")
    assert isinstance(failed, LLMCallFailed)
    assert not failed.retryable
    assert isinstance(answer, LLMResponseReceived)
    assert answer.response_text == effects.FRIENDLY_ENDINGS["safety"]
    assert not answer.tool_calls
    assert answer_id == effects.message_id("step-1", "response")


def test_an_empty_reply_is_sampled_once_more_then_answered_kindly() -> None:
    error = LLMError("empty", kind="empty", retryable=True)
    first = NextStep(StepKind.LLM_CALL, "step-1", attempt=1)
    [(failed, _)] = effects.llm_failed(first, error, T0, CONFIG, "m")
    assert isinstance(failed, LLMCallFailed)
    assert failed.retryable
    again = NextStep(StepKind.LLM_CALL, "step-1", attempt=2, last_failure=failed)
    (_, _), (answer, _) = effects.llm_failed(again, error, T0, CONFIG, "m")
    assert isinstance(answer, LLMResponseReceived)
    assert answer.response_text == effects.FRIENDLY_ENDINGS["empty"]


def test_a_cut_reply_is_asked_for_again_with_twice_the_budget_up_to_the_ceiling() -> None:
    config = EngineConfig(max_output_tokens=1000, max_output_tokens_ceiling=3000)
    assert [config.output_budget(n) for n in range(4)] == [1000, 2000, 3000, 3000]


def test_backoff_doubles_up_to_its_cap() -> None:
    config = EngineConfig(backoff_base=timedelta(seconds=1), backoff_max=timedelta(seconds=5))
    assert [config.backoff(n).total_seconds() for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_tool_result_and_a_final_tool_failure_share_the_call_s_result_id() -> None:
    decision = NextStep(StepKind.TOOL_EXECUTION, "tools-1", attempt=2, tool_calls=(call("c1"),))
    done, done_id = effects.tool_ran(decision, call("c1"), ToolOutcome(True, {"ok": 1}), T0, CONFIG)
    failed, failed_id = effects.tool_ran(
        decision, call("c1"), ToolOutcome(False, error_message="no", retryable=True), T0, CONFIG
    )
    assert isinstance(done, ToolExecutionCompleted)
    assert isinstance(failed, ToolExecutionFailed)
    assert not failed.retryable  # attempt 2 of 2: nothing left to retry
    assert done_id == failed_id  # a call has one final outcome, whichever comes first


def test_a_retryable_tool_failure_gets_its_own_id_per_attempt() -> None:
    outcome = ToolOutcome(False, error_message="busy", error_kind="timeout", retryable=True)
    first = NextStep(StepKind.TOOL_EXECUTION, "tools-1", attempt=1, tool_calls=(call("c1"),))
    event, id_ = effects.tool_ran(first, call("c1"), outcome, T0, CONFIG)
    assert isinstance(event, ToolExecutionFailed)
    assert event.retryable
    assert event.retry_at == T0 + CONFIG.backoff(1)
    result_id = effects.tool_ran(first, call("c1"), ToolOutcome(True), T0, CONFIG)[1]
    assert id_ != result_id


def test_termination_claims_the_ending_with_a_friendly_message() -> None:
    thread = ThreadEvents()
    thread.started()
    view = ThreadView(thread.events)
    limit = NextStep(StepKind.TERMINATION, reason="max_iterations", message="10 calls")
    [(event, _)] = effects.claims(limit, view, T0, CONFIG, "w")
    assert isinstance(event, SessionCompleted)
    assert event.completion_reason == "max_iterations"
    assert event.message == effects.FRIENDLY_LIMIT
    closed = effects.completion(NextStep(StepKind.TERMINATION, reason="user_requested"))
    assert closed.completion_reason == "terminated"


def test_the_reply_of_a_turn_is_its_final_answer_or_its_ending() -> None:
    asking = LLMResponseReceived(step_id="s", tool_calls=(call("c"),), model_name="m")
    final = LLMResponseReceived(step_id="s", response_text="done", model_name="m")
    ending = SessionCompleted(completion_reason="terminated", message="bye")
    assert effects.turn_reply([(asking, "1")]) is None
    assert effects.turn_reply([(final, "1")]) == "done"
    assert effects.turn_reply([(ending, "1")]) == "bye"


def test_a_failure_to_retry_ends_a_chain_at_its_backoff() -> None:
    retry_at = T0 + timedelta(seconds=4)
    tool = ToolExecutionFailed(
        step_id="s",
        tool_call_id="c",
        tool_name="t",
        error_message="x",
        retryable=True,
        retry_at=retry_at,
    )
    assert effects.backoff_until([(tool, "1")]) == retry_at
    final = LLMResponseReceived(step_id="s", response_text="done", model_name="m")
    assert effects.backoff_until([(final, "1")]) is None


def test_the_reply_body_names_the_thread_the_reply_and_the_attempt() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.answered_turn("hi", "hello there")
    view = ThreadView(thread.events)
    claim = ReplyDeliveryRequested(
        step_id="delivery-1",
        reply_position=thread.head,
        callback_url="https://example.com/hook",
        attempt=2,
        lease_expires_at=T0,
    )
    body = orjson.loads(effects.reply_body(view, claim))
    assert body["reply"] == {"text": "hello there", "final": False}
    assert (body["position"], body["delivery_id"], body["attempt"]) == (
        thread.head,
        "delivery-1",
        2,
    )


def test_a_refused_delivery_is_retried_only_while_attempts_remain() -> None:
    error = DeliveryError("the callback URL answered 503", retryable=True, status_code=503)
    early = NextStep(StepKind.DELIVER_REPLY, "d", attempt=1)
    last = NextStep(StepKind.DELIVER_REPLY, "d", attempt=CONFIG.policy.max_delivery_attempts)
    [(first, _)] = effects.delivery_failed(early, error, T0, CONFIG)
    [(final, _)] = effects.delivery_failed(last, error, T0, CONFIG)
    assert isinstance(first, ReplyDeliveryFailed)
    assert isinstance(final, ReplyDeliveryFailed)
    assert first.retryable
    assert first.status_code == 503
    assert not final.retryable


def test_a_provider_s_signatures_on_tool_calls_are_kept_with_the_answer() -> None:
    response = LLMResponse(
        text="",
        tool_calls=(call("c1", "add"),),
        model_name="gemini-3-pro",
        thought_signatures={"c1": "c2lnbmF0dXJl"},
    )
    [(event, _)] = effects.llm_answered("step-1", response, 1.0)
    assert isinstance(event, LLMResponseReceived)
    assert event.thought_signatures == {"c1": "c2lnbmF0dXJl"}
